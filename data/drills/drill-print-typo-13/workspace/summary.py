import sys

print("Cache begining")
sys.exit(0)
