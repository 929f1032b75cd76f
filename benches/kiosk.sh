#!/usr/bin/env bash
# The kiosk's figures, on the release build, with the software renderer:
#  1. one full 1080p frame (and 4K, 800x480), rendered headless: p50/p99 over 50 frames;
#  2. cold start to first frame: headless (`jarvis snapshot`: process start → first frame with the first poll's
#     data), and in a real X window under Xvfb (process start → the window is mapped, polled with xwininfo);
#  3. `jarvis demo` in a window under Xvfb for SOAK seconds (default 300): RSS at the end, and CPU over the last
#     60 s while the demo cluster changes on every poll (a full cluster update every 1.4 s);
#  4. CPU over 60 s with nothing changing (polling every hour: only the clock ticks).
# Usage: benches/kiosk.sh [SOAK_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK="${1:-300}"
cargo build --release --locked --bin jarvis >/dev/null
BIN=target/release/jarvis
WORK=$(mktemp -d)
XPID=""; JPID=""
cleanup() { kill $JPID $XPID 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== full frames, software renderer (headless)"
for size in 1920x1080 3840x2160 800x480; do
  $BIN snapshot --demo --size "$size" --out "$WORK/f.png" --frames 50 | tail -1
done

echo "== cold start to the first frame with cluster data, headless (3 runs)"
for _ in 1 2 3; do $BIN snapshot --demo --size 1920x1080 --out "$WORK/c.png" | sed "s/.*first frame/first frame/"; done

command -v Xvfb >/dev/null || { echo "Xvfb is missing (scripts/setup installs it)"; exit 1; }
DISP=":$((90 + RANDOM % 9))"
Xvfb "$DISP" -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 &
XPID=$!
sleep 1
export DISPLAY="$DISP" SLINT_BACKEND=winit-software

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_pct() { # pid seconds
  local a b; a=$(ticks "$1"); sleep "$2"; b=$(ticks "$1")
  python3 -c "print(f'{($b-$a)/$(getconf CLK_TCK)/$2*100:.2f}')"
}

echo "== cold start to a mapped window under Xvfb (3 runs)"
for _ in 1 2 3; do
  rm -rf "$WORK/d"; T0=$(date +%s%N)
  RUST_LOG=warn $BIN demo --listen 127.0.0.1:0 --data-dir "$WORK/d" >/dev/null 2>&1 &
  JPID=$!
  for _ in $(seq 6000); do xwininfo -name Jarvis 2>/dev/null | grep -q 'Map State: IsViewable' && break; sleep 0.005; done
  T1=$(date +%s%N)
  echo "window mapped $(( (T1 - T0) / 1000000 )) ms after start"
  kill $JPID; wait $JPID 2>/dev/null || true; JPID=""
done

echo "== jarvis demo with the UI for $SOAK s"
rm -rf "$WORK/d"
RUST_LOG=warn $BIN demo --listen 127.0.0.1:0 --data-dir "$WORK/d" >/dev/null 2>&1 &
JPID=$!
sleep $(( SOAK > 60 ? SOAK - 60 : 0 ))
echo "CPU during cluster updates (every 1.4 s): $(cpu_pct $JPID 60) % of one core"
echo "RSS after $SOAK s: $(awk '/VmRSS/ {print $2}' /proc/$JPID/status) kB (peak $(awk '/VmHWM/ {print $2}' /proc/$JPID/status) kB)"
kill $JPID; wait $JPID 2>/dev/null || true; JPID=""

echo "== idle: nothing changes (one poll an hour)"
rm -rf "$WORK/d"
RUST_LOG=warn $BIN demo --listen 127.0.0.1:0 --data-dir "$WORK/d" --poll-ms 3600000 >/dev/null 2>&1 &
JPID=$!
sleep 15
echo "CPU idle: $(cpu_pct $JPID 60) % of one core"
echo "RSS idle: $(awk '/VmRSS/ {print $2}' /proc/$JPID/status) kB"
