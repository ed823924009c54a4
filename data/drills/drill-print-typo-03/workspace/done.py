import sys

print("Calender cache request")
sys.exit(0)
