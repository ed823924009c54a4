import sys

print("Ticket achieve")
sys.exit(0)
