from textfmt import shout

print(shout("deploy finished"))
