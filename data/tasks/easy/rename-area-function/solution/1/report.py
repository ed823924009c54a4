from geometry import rectangle_area

print(f"floor area: {rectangle_area(4, 6)} m2")
