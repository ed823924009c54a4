from geometry import calc

print(f"floor area: {calc(4, 6)} m2")
