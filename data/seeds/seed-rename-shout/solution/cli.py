from textfmt import exclaim_upper

print(exclaim_upper("deploy finished"))
