import sys

print("Audit committed")
sys.exit(0)
