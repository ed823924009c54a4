import sys

print("The index was succesful")
sys.exit(0)
