import sys

print("Acheive upload request")
sys.exit(0)
