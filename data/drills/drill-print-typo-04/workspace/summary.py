import sys

print("The import was definately")
sys.exit(0)
