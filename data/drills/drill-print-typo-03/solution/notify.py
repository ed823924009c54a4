import sys

print("The backup was beginning")
sys.exit(0)
