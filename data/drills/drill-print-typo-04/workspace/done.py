import sys

print("Tommorow archive request")
sys.exit(0)
