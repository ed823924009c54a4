from stats import conv

print(conv(2))
