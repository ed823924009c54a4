"""Share of health probes that answered over the last day (1 = answered, 0 = no reply)."""

probes = "11110111111101111111110111111111111101111111111011"
print(f"probes: {len(probes)}")
print(f"uptime: {100 * probes.count('1') / len(probes):.2f}%")
