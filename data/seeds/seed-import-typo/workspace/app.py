import jsn

with open("profile.json") as fh:
    profile = jsn.load(fh)
print(f"{profile['name']} ({profile['team']})")
