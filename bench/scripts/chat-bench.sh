#!/usr/bin/env bash
# Chat servers side by side: ours (chat-server) and the tokio baseline
# (tokio-chat), each pinned to CPU 0 with echo-bench's chat scenario on
# CPU 1, at several room sizes, servers interleaved round by round.
#
#   bench/scripts/chat-bench.sh [ROUNDS]
#
# Environment: SIZES (default "100 1000 5000"), SECS (default 5), SENDERS
# (default 100), RATE (deliveries offered per second, default 5000000:
# each sender's interval is SENDERS * USERS / RATE seconds), SERVERS
# (default "ours tokio"; also ours2: chat-server --reactors 2; redis2: two
# chat-servers sharing the room through a redis-server started for the
# run, users split between them, all unpinned), PIN
# (default 1; 0 runs everything unpinned, as ours2 needs two cores, which
# it then shares with the load generator).
# Prints one line per run: deliveries/s, latency p50/p99/max, errors, and
# the server's CPU use over the run (user + system, % of one core; for
# redis2, both chat-servers and Redis together).
# Both servers run without their per-user limits, which the load exceeds
# on purpose: ours with --max-backlog 4194304 --max-rate 0, tokio-chat with
# --backlog-lines 65536.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
secs=${SECS:-5}
senders=${SENDERS:-100}
rate=${RATE:-5000000}
cargo build --release --quiet --bin chat-server --bin tokio-chat --bin echo-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# CPU ticks (user + system) of the given processes together.
cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
pids2=()
tck=$(getconf CLK_TCK)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
printf '%-6s %-6s %-5s %12s %10s %10s %10s %6s %6s\n' users server round deliv/s p50_us p99_us max_us errors cpu%
for users in ${SIZES:-100 1000 5000}; do
    interval=$(python3 -c "print($senders * $users / $rate * 1000)")
    for round in $(seq "$rounds"); do
        read -r -a servers <<< "${SERVERS:-ours tokio}"
        (( round % 2 == 0 )) && mapfile -t servers < <(printf '%s\n' "${servers[@]}" | tac)
        if [ "${PIN:-1}" = 1 ]; then on0=(taskset -c 0); on1=(taskset -c 1); else on0=(); on1=(); fi
        for s in "${servers[@]}"; do
            port=$(free_port)
            case $s in
                ours|ours2) reactors=1; [ "$s" = ours2 ] && reactors=2
                    "${on0[@]}" target/release/chat-server --bind 127.0.0.1 --port "$port" \
                        --reactors "$reactors" \
                        --log-level warn --max-backlog 4194304 --max-rate 0 >/dev/null 2>&1 & ;;
                tokio) "${on0[@]}" target/release/tokio-chat --port "$port" \
                        --backlog-lines 65536 >/dev/null 2>&1 & ;;
                redis2) ;; # below
            esac
            pid=$!
            cpupids=("$pid")
            also=()
            if [ "$s" = redis2 ]; then
                rport=$(free_port)
                redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
                    >/dev/null 2>&1 &
                rpid=$!
                for _ in $(seq 100); do
                    redis-cli -p "$rport" ping >/dev/null 2>&1 && break
                    sleep 0.05
                done
                port2=$(free_port)
                for p in "$port" "$port2"; do
                    target/release/chat-server --bind 127.0.0.1 --port "$p" \
                        --redis "127.0.0.1:$rport" --log-level warn \
                        --max-backlog 4194304 --max-rate 0 >/dev/null 2>&1 &
                    pids2+=($!)
                done
                pid=${pids2[0]}
                cpupids=("${pids2[@]}" "$rpid")
                also=(--also-addr "127.0.0.1:$port2")
            fi
            for _ in $(seq 100); do
                python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
                sleep 0.05
            done
            # The probe connection joined and left; start from a quiet room.
            sleep 0.2
            c0=$(cpu "${cpupids[@]}"); t0=$(date +%s.%N)
            out=$("${on1[@]}" target/release/echo-bench chat --addr "127.0.0.1:$port" "${also[@]}" \
                --conns "$users" --senders "$senders" --interval-ms "$interval" \
                --secs "$secs" --no-progress --json || true)
            c1=$(cpu "${cpupids[@]}"); t1=$(date +%s.%N)
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            if [ "$s" = redis2 ]; then
                kill "${pids2[@]}" "$rpid" 2>/dev/null || true
                wait "${pids2[@]}" "$rpid" 2>/dev/null || true
                pids2=()
            fi
            python3 - "$users" "$s" "$round" "$c0" "$c1" "$t0" "$t1" "$tck" "$out" <<'PY'
import json, sys
users, s, rnd, c0, c1, t0, t1, tck, out = sys.argv[1:]
cpu = (float(c1) - float(c0)) / float(tck) / (float(t1) - float(t0)) * 100
try:
    r = json.loads(out.strip().splitlines()[-1])
    e = r["errors"]["total"]
    print(f"{users:<6} {s:<6} {rnd:<5} {r['deliveries_per_sec']:12.0f} {r['latency_us']['p50']:10.1f} {r['latency_us']['p99']:10.1f} {r['latency_us']['max']:10.1f} {e:6d} {cpu:6.1f}")
except Exception as ex:
    print(f"{users:<6} {s:<6} {rnd:<5} run failed: {ex}: {out[:200]!r}")
PY
        done
    done
done
