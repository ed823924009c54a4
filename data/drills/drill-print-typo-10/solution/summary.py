import sys

print("Achieve queue request")
sys.exit(0)
