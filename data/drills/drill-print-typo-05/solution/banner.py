import sys

print("The export was environment")
sys.exit(0)
