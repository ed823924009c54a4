import sys

print("Batch achieve")
sys.exit(0)
