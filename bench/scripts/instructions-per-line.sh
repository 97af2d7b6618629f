#!/usr/bin/env bash
# User-space instructions per echoed line, under callgrind: immune to the
# machine's noise. For each server and each pattern it runs the server twice
# under valgrind, with a short and a long load, and prints the difference
# divided by the extra lines, so start-up and shutdown cancel out.
#
#   bench/scripts/instructions-per-line.sh [SERVER...]
#
# SERVER is `ours`, `raw` (raw-mio-echo), `tokio` (tokio-echo), or
# `NAME=PATH [ARGS...]` for any echo-line server binary taking --port
# (quote it: 'window1=target/release/echo-server --window 1'). Default: ours
# raw tokio. Patterns (10 connections, 33-byte lines):
#   pipelined: batches of 64 lines per connection, all sent, then all read;
#              20 and 120 batches (64,000 extra lines);
#   pingpong:  one line in flight per connection; 200 and 1,200 round trips
#              per connection (10,000 extra lines).
# Needs valgrind and python3; builds the release binaries first.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin echo-server --bin raw-mio-echo --bin tokio-echo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/client.py" <<'PY'
import selectors, socket, sys
port, pattern, conns, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ss = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
for s in ss:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def line(i, k):
    return b"line-%06d-%018d\n" % (i, k)
def expect(s, want):
    got = 0
    while got < want:
        d = s.recv(65536)
        if not d:
            raise SystemExit("server closed the connection")
        got += len(d)
if pattern == "pipelined":
    depth = 64
    for b in range(rounds):
        for i, s in enumerate(ss):
            s.sendall(b"".join(line(i, b * depth + k) for k in range(depth)))
        for i, s in enumerate(ss):
            expect(s, sum(len(b"You said: ") + len(line(i, b * depth + k)) for k in range(depth)))
else:
    sel = selectors.DefaultSelector()
    left = {}
    for i, s in enumerate(ss):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        left[i] = [rounds, 0, len(b"You said: ") + len(line(i, 0))]
        s.sendall(line(i, 0))
    busy = conns
    while busy:
        for key, _ in sel.select():
            s, i = key.fileobj, key.data
            st = left[i]
            st[1] += len(s.recv(65536))
            if st[1] >= st[2]:
                st[0] -= 1
                st[1] -= st[2]
                if st[0] == 0:
                    sel.unregister(s)
                    busy -= 1
                else:
                    s.sendall(line(i, rounds - st[0]))
for s in ss:
    s.close()
PY
port=23400
run() { # PATTERN ROUNDS BIN [ARGS] -> total instructions
    local pattern=$1 rounds=$2
    shift 2
    port=$((port + 1))
    rm -f "$work"/cg.out*
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" --port "$port" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        sleep 0.2
        python3 -c "import socket;socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
    done
    timeout 600 python3 "$work/client.py" "$port" "$pattern" 10 "$rounds"
    sleep 0.3
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 0.5
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    callgrind_annotate "$(ls "$work"/cg.out.* | head -1)" 2>/dev/null |
        awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}
per_line() { # PATTERN BIN [ARGS] -> instructions per extra line
    local pattern=$1
    shift
    local small big extra
    if [[ $pattern == pipelined ]]; then
        small=20 big=120 extra=64000
    else
        small=200 big=1200 extra=10000
    fi
    local a b
    a=$(run "$pattern" "$small" "$@")
    b=$(run "$pattern" "$big" "$@")
    echo $(( (b - a) / extra ))
}
[[ $# -gt 0 ]] || set -- ours raw tokio
printf '%-12s %12s %12s\n' server pipelined pingpong
for spec in "$@"; do
    case "$spec" in
        ours) name=ours; cmd=(target/release/echo-server --bind 127.0.0.1 --log-level error) ;;
        raw) name=raw-mio; cmd=(target/release/raw-mio-echo) ;;
        tokio) name=tokio; cmd=(target/release/tokio-echo) ;;
        *=*) name=${spec%%=*}; read -r -a cmd <<<"${spec#*=}" ;;
        *) echo "unknown server $spec" >&2; exit 2 ;;
    esac
    p=$(per_line pipelined "${cmd[@]}")
    q=$(per_line pingpong "${cmd[@]}")
    printf '%-12s %12s %12s\n' "$name" "$p" "$q"
done
