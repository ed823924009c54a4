from stats import strip_spaces

print(strip_spaces('a b c'))
