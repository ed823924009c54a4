#!/usr/bin/env bash
# Bump VERSION (major, minor or patch) and open a CHANGELOG.md section for the new version.
set -euo pipefail

part="${1:-}"
case "$part" in
  major|minor|patch) ;;
  *) echo "usage: release.sh major|minor|patch" >&2; exit 2 ;;
esac

IFS=. read -r major minor patch < VERSION
case "$part" in
  major) new="$((major + 1)).0.0" ;;
  minor) new="$major.$((minor + 1)).0" ;;
  patch) new="$major.$minor.$((patch + 1))" ;;
esac

# insert above the first "## " heading only, leaving every other line as it was
inserted=0
tmp="CHANGELOG.md.tmp"
while IFS= read -r line || [ -n "$line" ]; do
  if [ "$inserted" -eq 0 ] && [[ "$line" == "## "* ]]; then
    printf '## %s\n\n' "$new" >> "$tmp"
    inserted=1
  fi
  printf '%s\n' "$line" >> "$tmp"
done < CHANGELOG.md
mv "$tmp" CHANGELOG.md
echo "$new" > VERSION
echo "$new"
