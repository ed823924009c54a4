import json

with open("profile.json") as fh:
    profile = json.load(fh)
print(f"{profile['name']} ({profile['team']})")
