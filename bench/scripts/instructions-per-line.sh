#!/usr/bin/env bash
# User-space instructions per echoed line, under callgrind: immune to the
# machine's noise. Runs the server twice (20 and 120 batches of 10
# connections x 64 pipelined 33-byte lines) and prints the difference per
# extra line.
#   bench/scripts/instructions-per-line.sh [SERVER_BINARY [server args...]]
# Default server: target/release/echo-server. Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/echo-server}
shift || true
client=$(mktemp)
trap 'rm -f "$client" /tmp/ipl.out*' EXIT
cat > "$client" <<'PY'
import socket, sys
port, conns, batches, depth = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), 64
ss = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
for b in range(batches):
    for i, s in enumerate(ss):
        s.sendall(b"".join(b"line-%06d-%018d\n" % (i, b * depth + k) for k in range(depth)))
    for i, s in enumerate(ss):
        want = sum(len(b"You said: line-%06d-%018d\n" % (i, b * depth + k)) for k in range(depth))
        got = 0
        while got < want:
            d = s.recv(65536)
            if not d:
                raise SystemExit("server closed the connection")
            got += len(d)
for s in ss:
    s.close()
PY
run() { # BATCHES PORT [server args] -> total instructions
    local batches=$1 port=$2
    shift 2
    rm -f /tmp/ipl.out*
    valgrind --tool=callgrind --callgrind-out-file=/tmp/ipl.out "$bin" --port "$port" "$@" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
        sleep 0.2
        python3 -c "import socket;socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
    done
    timeout 300 python3 "$client" "$port" 10 "$batches"
    sleep 0.3
    callgrind_control -d "$pid" >/dev/null 2>&1; sleep 0.5
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    callgrind_annotate "$(ls /tmp/ipl.out.* | head -1)" 2>/dev/null |
        awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}
a=$(run 20 23401 "$@")
b=$(run 120 23402 "$@")
echo "instructions per echoed line: $(( (b - a) / 64000 ))"
