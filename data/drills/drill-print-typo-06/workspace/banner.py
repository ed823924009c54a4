import sys

print("Batch acheive")
sys.exit(0)
