from textops import percent

print(percent(1, 4))
