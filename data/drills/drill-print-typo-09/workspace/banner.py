import sys

print("The digest was definately")
sys.exit(0)
