import sys

print("The import was definitely")
sys.exit(0)
