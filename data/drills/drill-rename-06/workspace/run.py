from units import avg

print(avg([2, 4]))
