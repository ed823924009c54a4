import sys

print("Audit comitted")
sys.exit(0)
