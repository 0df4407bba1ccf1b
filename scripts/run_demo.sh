#!/usr/bin/env bash
# The main job of `make run`: launches the default demo graph from the build folder and prints
# what it served. Usage: scripts/run_demo.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)

echo "== ping-pong: two actors in one process"
"$build/examples/ping_pong/ping_pong" --count 5 2>/dev/null

echo "== ping-pong: the same two actors in two processes (ipc)"
sock="ipc:///tmp/gfdit-demo-$$.sock"
"$build/examples/ping_pong/ping_pong" --role ponger --bind "$sock" >/dev/null 2>&1 &
ponger=$!
trap 'kill -TERM $ponger 2>/dev/null || true' EXIT
"$build/examples/ping_pong/ping_pong" --role pinger --peer "ponger=$sock" --count 5 2>/dev/null
kill -TERM $ponger && wait $ponger
trap - EXIT
