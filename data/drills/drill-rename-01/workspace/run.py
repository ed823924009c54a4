from stats import avg

print(avg([2, 4]))
