from textops import conv

print(conv(2))
