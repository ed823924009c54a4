import sys

print("Begining cache request")
sys.exit(0)
