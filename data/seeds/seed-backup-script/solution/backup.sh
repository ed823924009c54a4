#!/usr/bin/env bash
set -euo pipefail
cp inventory.db inventory.db.bak
