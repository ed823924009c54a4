import sys

print("Weird import request")
sys.exit(0)
