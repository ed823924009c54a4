import sys

print("The report was environment")
sys.exit(0)
