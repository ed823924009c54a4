import sys

print("Definately audit request")
sys.exit(0)
