from textops import f

print(f(1, 4))
