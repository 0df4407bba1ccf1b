#!/usr/bin/env bash
# The client installs with pip from its folder (offline: Debian's setuptools, no build isolation)
# into a fresh virtual environment, and imports from there, not from the source tree.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Debian's interpreter, whose site packages hold python3-setuptools and python3-wheel (a python3
# earlier on PATH, such as pyenv's, may have neither).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" -m venv --system-site-packages "$tmp/venv"
# A copy: pip builds in place and would leave build/ and *.egg-info in the repository.
cp -r "$src" "$tmp/client"
rm -rf "$tmp/client/build" "$tmp/client"/*.egg-info
"$tmp/venv/bin/pip" install --quiet --no-build-isolation --no-index "$tmp/client"
cd "$tmp"
"$tmp/venv/bin/python" - <<'PY'
import gfdit_client, os, sys
where = os.path.dirname(gfdit_client.__file__)
assert "site-packages" in where, f"imported from {where}, not the environment"
for name in ("Client", "GfditError", "generate"):
    assert hasattr(gfdit_client, name), name
from gfdit_client import png
data = png.write_png(2, 1, 1, bytes([0, 255]))
assert png.read_png(data) == (2, 1, 1, bytes([0, 255]))
print("installed in", where)
PY
