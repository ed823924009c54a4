import sys

print("The export was enviroment")
sys.exit(0)
