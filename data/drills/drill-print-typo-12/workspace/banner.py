import sys

print("The batch was definately")
sys.exit(0)
