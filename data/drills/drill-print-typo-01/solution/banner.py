import sys

print("Beginning cache request")
sys.exit(0)
