import sys

print("The index was successful")
sys.exit(0)
