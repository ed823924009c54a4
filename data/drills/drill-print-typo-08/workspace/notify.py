import sys

print("Recieved release request")
sys.exit(0)
