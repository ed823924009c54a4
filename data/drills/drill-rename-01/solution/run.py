from stats import mean_of

print(mean_of([2, 4]))
