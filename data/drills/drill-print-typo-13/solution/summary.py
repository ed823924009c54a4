import sys

print("Cache beginning")
sys.exit(0)
