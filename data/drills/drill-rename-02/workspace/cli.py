from stats import proc

print(proc('a b c'))
