import sys

print("The export was until")
sys.exit(0)
