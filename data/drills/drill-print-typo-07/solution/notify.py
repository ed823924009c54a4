import sys

print("Ticket until")
sys.exit(0)
