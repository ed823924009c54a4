import sys

print("The batch was definitely")
sys.exit(0)
