#!/usr/bin/env bash
# Runs the release `jarvis demo` headless for DURATION seconds (default 300) and reports its resident memory, its
# CPU use over the run, and the requests per second it sent to the (simulated) PVE API, per path.
# Usage: benches/soak.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-300}"
cargo build --release --locked --bin jarvis >/dev/null
DATA=$(mktemp -d)
OUT="$DATA/banner.txt"
RUST_LOG=warn target/release/jarvis demo --listen 127.0.0.1:0 --data-dir "$DATA" >"$OUT" 2>"$DATA/stderr.txt" &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do grep -q "Ctrl-C" "$OUT" 2>/dev/null && break; sleep 0.1; done
SIM=$(awk '/simulated Proxmox VE:/ {print $4}' "$OUT")
AUTH=$(grep -o "PVEAPIToken=[^']*" "$OUT")
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
# Measure from the first poll on (start-up is reported apart, in the UI issue's cold-start figure).
sleep 2
T0=$(date +%s.%N); C0=$(cpu_ticks)
R0=$(curl -s --cacert "$DATA/pve-sim-cert.pem" -H "Authorization: $AUTH" "$SIM/_sim/requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
sleep "$DURATION"
T1=$(date +%s.%N); C1=$(cpu_ticks)
REQS=$(curl -s --cacert "$DATA/pve-sim-cert.pem" -H "Authorization: $AUTH" "$SIM/_sim/requests")
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
python3 - "$T0" "$T1" "$C0" "$C1" "$TICKS" "$R0" "$RSS_KB" "$HWM_KB" "$REQS" <<'PY'
import json, sys
t0, t1, c0, c1, ticks, r0, rss, hwm = map(float, sys.argv[1:9])
reqs = json.loads(sys.argv[9])
secs = t1 - t0
print(f"duration {secs:.0f} s")
print(f"RSS {rss/1024:.1f} MiB (peak {hwm/1024:.1f} MiB), includes the in-process simulator")
print(f"CPU {100*(c1-c0)/ticks/secs:.2f} % of one core")
print(f"PVE requests {(reqs['total']-r0)/secs:.3f} /s in steady state (total since start {reqs['total']})")
for path, n in sorted(reqs["per_path"].items(), key=lambda kv: -kv[1]):
    print(f"  {path}: {n}")
PY
