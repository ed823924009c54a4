import sys

print("The report was acheive")
sys.exit(0)
