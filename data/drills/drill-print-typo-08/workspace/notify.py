import sys

print("Acheive audit request")
sys.exit(0)
