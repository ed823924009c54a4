from textops import calc

print(calc(3, 4))
