#!/usr/bin/env bash
# Soak test: builds the release echo-server and the soak driver
# (bench/src/bin/soak.rs), starts the server on a free loopback port, and drives
# SOAK_CONNS connections with a mix of behaviours (ping-pong, pipelining,
# churn, overlong lines, never-reading, resets) for SOAK_SECS seconds.
#
#   bench/scripts/soak.sh                        # 60 s, 1000 connections
#   SOAK_SECS=5 SOAK_CONNS=100 bench/scripts/soak.sh   # CI-sized
#   SOAK_PROFILE=dev ...                         # debug build (reuses what
#                                                # `cargo test` built; slower)
#
# Exit status 0 only if every line of a well-behaved client was answered
# correctly, every overlong line got its error reply, the server's
# descriptor count came back to where it started, and the server then
# exited 0 on SIGTERM. Loopback only; everything is bounded in time.
set -euo pipefail

SOAK_SECS="${SOAK_SECS:-60}"
SOAK_CONNS="${SOAK_CONNS:-1000}"
SOAK_PROFILE="${SOAK_PROFILE:-release}"
MAX_LINE=1024

cd "$(dirname "$0")/../.."
case "$SOAK_PROFILE" in
    release) profile_dir=release ;;
    dev) profile_dir=debug ;;
    *) echo "soak.sh: SOAK_PROFILE must be release or dev" >&2; exit 2 ;;
esac
cargo build --profile "$SOAK_PROFILE" --quiet --bin echo-server --bin soak
target_dir="$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target_dir="${target_dir:-target}"
server_bin="$target_dir/$profile_dir/echo-server"
driver_bin="$target_dir/$profile_dir/soak"

# Room for the connections on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --write-timeout: never-reading clients are closed by the server after
# their output has been stuck this long (also exercised by the soak).
"$server_bin" --bind 127.0.0.1 --port 0 --max-line "$MAX_LINE" \
    --write-timeout 2 --grace 5 --log-level info \
    >"$work/server.log" 2>&1 &
server_pid=$!

addr=""
for _ in $(seq 1 100); do
    addr="$(sed -n 's/.*accepting connections on \([^ ]*\).*/\1/p' "$work/server.log" | head -n1)"
    [[ -n "$addr" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "soak.sh: echo-server exited at start-up:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "soak.sh: echo-server did not report its address:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "soak.sh: echo-server (pid $server_pid) on $addr; $SOAK_CONNS connections for $SOAK_SECS s"

status=0
timeout --signal=KILL "$((SOAK_SECS + 120))" \
    "$driver_bin" --addr "$addr" --pid "$server_pid" --secs "$SOAK_SECS" \
    --conns "$SOAK_CONNS" --max-line "$MAX_LINE" || status=$?

# An orderly stop: SIGTERM, exit 0 within the grace period.
kill -TERM "$server_pid"
server_status=0
for _ in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
    echo "soak.sh: echo-server still running 10 s after SIGTERM" >&2
    server_status=1
else
    wait "$server_pid" || server_status=$?
fi
server_pid=""
panics="$(grep -c 'panicked' "$work/server.log" || true)"
warnings="$(grep -c ' WARN ' "$work/server.log" || true)"
echo "soak.sh: server exit status $server_status after SIGTERM; log: $warnings warnings, $panics panics"
if [[ "$server_status" -ne 0 || "$panics" -ne 0 ]]; then
    tail -n 20 "$work/server.log" >&2
    status=1
fi
exit "$status"
