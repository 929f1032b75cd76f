#!/usr/bin/env bash
# The kiosk figures of issue 16, on the release build, in a real X window under Xvfb:
#  1. CPU with a conversation on screen (one exchange: "do not start win11-test" and its answer) while the demo cluster changes on every 1.4 s poll,
#     and how often Slint reported a change-handler chain (the chat used to follow its own estimated height, which
#     chased itself on every update);
#     with BEFORE=/path/to/an/older/jarvis the same run for that binary, for the ratio;
#  2. the GPU renderer probe (`jarvis kiosk-probe`, femtovg on Mesa's llvmpipe here): wall time, 5 runs — what a
#     kiosk with a render node pays once at start.
# Usage: [BEFORE=/path/to/jarvis] benches/kiosk_input.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"
cargo build --release --locked --bin jarvis >/dev/null
WORK=$(mktemp -d)
XPID=""; JPID=""
cleanup() {
  [ -n "$JPID" ] && kill "$JPID" 2>/dev/null
  [ -n "$XPID" ] && kill "$XPID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
command -v Xvfb >/dev/null || { echo "Xvfb is missing (scripts/setup installs it)"; exit 1; }
DISP=":$((60 + RANDOM % 20))"
Xvfb "$DISP" -screen 0 1920x1080x24 -nolisten tcp >/dev/null 2>&1 &
XPID=$!
sleep 1
export DISPLAY="$DISP"
TOKEN=bench-token-0123456789abcdef
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

with_conversation() { # binary label
  local bin=$1 label=$2 port=$((20000 + RANDOM % 20000))
  rm -rf "$WORK/d"
  JARVIS_WEB_TOKEN=$TOKEN JARVIS_OPERATOR_TOKEN=op-$TOKEN RUST_LOG=warn \
    "$bin" demo --listen "127.0.0.1:$port" --data-dir "$WORK/d" \
    >/dev/null 2>"$WORK/err" &
  JPID=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"text": "do not start win11-test"}' "127.0.0.1:$port/api/v1/chat" >/dev/null
  # The kiosk shows the conversation it reloads at start: restart it so the history is on screen.
  kill $JPID; wait $JPID 2>/dev/null || true
  JARVIS_WEB_TOKEN=$TOKEN JARVIS_OPERATOR_TOKEN=op-$TOKEN RUST_LOG=warn \
    "$bin" demo --listen "127.0.0.1:$port" --data-dir "$WORK/d" \
    >/dev/null 2>"$WORK/err" &
  JPID=$!
  sleep 10
  local a b c0 c1
  a=$(ticks $JPID); c0=$(grep -c "long callback" "$WORK/err" || true)
  sleep "$SECS"
  b=$(ticks $JPID); c1=$(grep -c "long callback" "$WORK/err" || true)
  python3 -c "print(f'$label: CPU {($b-$a)/$(getconf CLK_TCK)/$SECS*100:.2f} % of one core; change-handler chains {($c1-$c0)/$SECS:.1f}/s')"
  kill $JPID; wait $JPID 2>/dev/null || true; JPID=""
}

echo "== a conversation on screen, cluster updates every 1.4 s, $SECS s"
with_conversation target/release/jarvis "this build"
if [ -n "${BEFORE:-}" ]; then with_conversation "$BEFORE" "before ($BEFORE)"; fi

echo "== GPU renderer probe (femtovg), 5 runs"
for _ in 1 2 3 4 5; do
  T0=$(date +%s%N)
  target/release/jarvis kiosk-probe --backend winit --renderer femtovg 2>/dev/null && r=ok || r=failed
  T1=$(date +%s%N)
  echo "probe $r in $(( (T1 - T0) / 1000000 )) ms"
done
