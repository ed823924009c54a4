import sys

print("Achieve audit request")
sys.exit(0)
