#!/usr/bin/env bash
# Run-queue policies (fifo, receiver-next, a seeded random order) and
# busy-poll, side by side in one run.
#   bench/scripts/policy-bench.sh [ROUNDS]
# Builds echo-server with metrics on and off, then for each round and each
# configuration starts the server pinned to CPU 0 and runs echo-bench pinned
# to CPU 1: pipeline, pingpong (50 conns), pingpong (1 conn), churn; then
# (metrics on) chat-server under the same configuration and the chat
# broadcast (100 users, 10 senders at 10,000 lines/s each: 1M deliveries
# a second offered). Prints one line per run, with the server's CPU use.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
secs=${BENCH_SECS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --bin echo-server --bin echo-bench --bin chat-server
cp target/release/echo-server "$work/es-on"
cargo build --release --quiet -p credit-echo --no-default-features --bin echo-server
cp target/release/echo-server "$work/es-off"
cargo build --release --quiet --bin echo-server   # leave the default build in place
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
port=21300
for r in $(seq "$rounds"); do
    for cfg in "on fifo 0" "on receiver-next 0" "on random:7 0" "on fifo 50" "on receiver-next 50" "off fifo 0"; do
        set -- $cfg; variant=$1; pol=$2; bp=$3
        port=$((port + 1))
        taskset -c 0 "$work/es-$variant" --bind 127.0.0.1 --port "$port" --policy "$pol" \
            --busy-poll "$bp" --log-level warn >/dev/null 2>&1 &
        pid=$!
        sleep 0.4
        for sc in "pipeline" "pingpong" "pingpong --conns 1" "churn"; do
            c0=$(cpu "$pid"); t0=$(date +%s.%N)
            out=$(taskset -c 1 target/release/echo-bench $sc --addr "127.0.0.1:$port" \
                --secs "$secs" --no-progress 2>&1 || true)
            c1=$(cpu "$pid"); t1=$(date +%s.%N)
            pct=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.0f", (b-a)/(e-s)}')
            echo "R$r metrics=$variant $pol busy-poll=${bp}us $sc cpu=${pct}% :: $(echo "$out" | tr '\n' ' ' | tr -s ' ')"
        done
        kill -INT "$pid"; sleep 0.3; kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
        [ "$variant" = on ] || continue
        port=$((port + 1))
        taskset -c 0 target/release/chat-server --bind 127.0.0.1 --port "$port" --policy "$pol" \
            --busy-poll "$bp" --log-level warn >/dev/null 2>&1 &
        pid=$!
        sleep 0.4
        c0=$(cpu "$pid"); t0=$(date +%s.%N)
        out=$(taskset -c 1 target/release/echo-bench chat --addr "127.0.0.1:$port" --conns 100 \
            --senders 10 --rate 10000 --warmup 1 --secs "$secs" --no-progress 2>&1 || true)
        c1=$(cpu "$pid"); t1=$(date +%s.%N)
        pct=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.0f", (b-a)/(e-s)}')
        echo "R$r chat $pol busy-poll=${bp}us cpu=${pct}% :: $(echo "$out" | tr '\n' ' ' | tr -s ' ')"
        kill -INT "$pid"; sleep 0.3; kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    done
done
