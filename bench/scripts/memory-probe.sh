#!/usr/bin/env bash
# The buffer memory budget, tried as hostile clients would: echo-server
# with --max-buffer-memory LIMIT, CONNS connections that write lines as
# fast as they can and never read, and one client that sends a line and
# reads its reply, again and again (echo-bench flood). Fails unless
#   - the server's RSS stays under LIMIT plus OVERHEAD,
#   - the well-behaved client gets every reply, and
#   - RSS is back within twice its starting figure within AFTER seconds
#     of the hostile clients leaving, and
#   - the server's own account says so too: no connection left, and no
#     buffer memory held (read from its admin endpoint's /metrics).
#
#   bench/scripts/memory-probe.sh
#
# Environment: CONNS (4000), LIMIT_MIB (64), OVERHEAD_MIB (80: what the
# budget does not count, measured at 34-69 MB for 4,000 flooding
# connections: their actors and mailboxes grown to the session's window,
# units in flight, allocator slack; see NOTES.md), SECS (5), AFTER (10),
# PROFILE (release; dev reuses what `cargo test` built).
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${CONNS:-4000}
limit=${LIMIT_MIB:-64}
overhead=${OVERHEAD_MIB:-80}
secs=${SECS:-5}
after=${AFTER:-10}
profile=${PROFILE:-release}
case "$profile" in
    release) dir=target/release ;;
    dev) dir=target/debug ;;
    *) echo "memory-probe.sh: PROFILE must be release or dev" >&2; exit 2 ;;
esac
cargo build --profile "$profile" --quiet --bin echo-server --bin echo-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log=$(mktemp)
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
admin_port=$(free_port)
"$dir/echo-server" --bind 127.0.0.1 --port "$port" --max-buffer-memory "${limit}MiB" \
    --log-level warn --admin "127.0.0.1:$admin_port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
    sleep 0.05
done
sleep 0.5
out=$("$dir/echo-bench" flood --addr "127.0.0.1:$port" --conns "$conns" --secs "$secs" \
    --after "$after" --pid "$pid" --no-progress --json || true)
metrics=$(curl -s --max-time 5 "http://127.0.0.1:$admin_port/metrics" || true)
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
python3 - "$out" "$limit" "$overhead" "$log" "$metrics" <<'PY'
import json, sys
out, limit, overhead, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
metrics = {}
for line in sys.argv[5].splitlines():
    if line.startswith("credit_") and "{" in line:
        name, value = line.split("{")[0], line.rsplit(" ", 1)[1]
        metrics[name] = float(value)
try:
    r = json.loads(out.strip().splitlines()[-1])
except Exception as e:
    print(f"memory-probe: no result ({e}): {out[:300]!r}")
    sys.exit(1)
closes = sum(1 for l in open(log) if "budget is exhausted" in l)
bound = (limit + overhead) * 1024
start, peak, after = r["rss_start_kib"], r["rss_peak_kib"], r["rss_after_kib"]
print(f"hostile      {r['conns']} connections, {r['connected']} wrote, "
      f"{r['flooded'] / 1e6:.0f} MB, {r['closed']} closed ({closes} overload closes logged)")
print(f"good client  {r['good_sent']} lines, {r['good_answered']} answered, "
      f"{r['good_errors']} errors, longest wait {r['good_max_wait_ms']:.0f} ms")
print(f"server rss   start {start} KiB, peak {peak} KiB (bound {bound} KiB), "
      f"end {after} KiB, within 2x of start after {r['back_within_2x_s']} s")
failed = []
if peak > bound:
    failed.append(f"peak RSS {peak} KiB over {limit} MiB + {overhead} MiB")
if r["good_errors"] or r["good_answered"] != r["good_sent"] or r["good_sent"] == 0:
    failed.append("the well-behaved client missed replies")
conns = metrics.get("credit_connections")
held = metrics.get("credit_sockets_buffer_memory_bytes")
def num(v):
    return "?" if v is None else f"{v:.0f}"
print(f"server says  {num(conns)} connections open, {num(held)} bytes of buffer memory held")
if conns != 0 or held != 0:
    failed.append("the server still holds connections or buffer memory")
if r["back_within_2x_s"] is None or after > 2 * start:
    failed.append(f"RSS did not come back within 2x of {start} KiB")
for f in failed:
    print(f"memory-probe: FAIL: {f}")
print("memory-probe: " + ("FAIL" if failed else "PASS"))
sys.exit(1 if failed else 0)
PY
