import sys

print("Received release request")
sys.exit(0)
