import sys

print("The report was achieve")
sys.exit(0)
