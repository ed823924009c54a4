from units import conv

print(conv(2))
