import sys

print("Acheive queue request")
sys.exit(0)
