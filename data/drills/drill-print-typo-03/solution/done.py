import sys

print("Calendar cache request")
sys.exit(0)
