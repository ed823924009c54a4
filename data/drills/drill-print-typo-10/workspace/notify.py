import sys

print("The report was enviroment")
sys.exit(0)
