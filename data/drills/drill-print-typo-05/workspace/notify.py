import sys

print("Wierd import request")
sys.exit(0)
