import sys

print("The digest was definitely")
sys.exit(0)
