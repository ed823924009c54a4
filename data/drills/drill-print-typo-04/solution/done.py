import sys

print("Tomorrow archive request")
sys.exit(0)
