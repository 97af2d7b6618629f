#!/usr/bin/env bash
# Server RSS per idle connection and per connection after one line: starts
# a server pinned to CPU 0, opens CONNS idle connections with echo-bench's
# c10k scenario pinned to CPU 1 (which samples the server's RSS through its
# pid), then sends one line on each. Repeats RUNS times.
#
#   bench/scripts/rss-per-connection.sh [SERVER [ARGS...]]
#
# SERVER defaults to our release echo-server; any echo-line server taking
# --port works (target/release/raw-mio-echo, target/release/tokio-echo).
# Environment: CONNS (default 10000), RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin echo-server --bin echo-bench --bin raw-mio-echo --bin tokio-echo
conns=${CONNS:-10000}
runs=${RUNS:-3}
[[ $# -gt 0 ]] || set -- target/release/echo-server --bind 127.0.0.1 --log-level warn
# Two descriptors per connection live in this script's processes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for run in $(seq "$runs"); do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    taskset -c 0 "$@" --port "$port" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
        sleep 0.1
    done
    echo "run $run: $*"
    taskset -c 1 target/release/echo-bench c10k --addr "127.0.0.1:$port" --conns "$conns" \
        --pid "$pid" --no-progress 2>&1 | grep -iE "rss|served"
    kill -INT "$pid" 2>/dev/null || true
    sleep 0.3
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
