import sys

print("The export was untill")
sys.exit(0)
