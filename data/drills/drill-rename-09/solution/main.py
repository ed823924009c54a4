from units import km_to_m

print(km_to_m(2))
