import sys

print("Definitely audit request")
sys.exit(0)
