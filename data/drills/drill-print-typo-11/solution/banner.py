import sys

print("Achieve upload request")
sys.exit(0)
