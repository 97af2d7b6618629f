#!/usr/bin/env bash
# Cross-host test of deploy/haproxy/echo.cfg with two echo-server hosts, and
# of deploy/haproxy/chat.cfg with two chat-servers sharing one room through
# Redis.
#
# Five hosts, each a network namespace with its own address on one /24,
# joined by a bridge that lives in a sixth ("switch") namespace, so the
# machine's own network is left alone:
#
#   client 10.77.0.10 ──┐
#   lb     10.77.0.2  ──┤
#   app1   10.77.0.11 ──┼── br0 (switch namespace)
#   app2   10.77.0.12 ──┤
#   redis  10.77.0.20 ──┘
#
# HAProxy (the distribution's package) runs on lb with the shipped echo.cfg,
# an echo-server on each app host with --proxy-protocol (from lb only),
# --admin, --drain-file and --grace. Checks, one TAP-like line each:
#   1. lines sent through HAProxy are answered
#   2. each server logs the client host's address, not HAProxy's
#   3. a killed server is taken out within the check interval, and taken
#      back after it restarts
#   4. a draining server (drain file, /readyz 503) keeps its sessions and
#      gets no new ones
#   5. a client looping over short connections sees no failure across two
#      HAProxy reloads (master-worker, SIGUSR2)
#   6. /metrics passes `promtool check metrics`
#
# Then one chat room across the two application hosts: the redis host runs
# Debian's redis-server, each application host a
# chat-server with --redis, and a second HAProxy on lb runs the shipped
# chat.cfg. Checks:
#   7. two users on each server: every user sees every `says` line, in one
#      order
#   8. a newcomer's `present:` line lists the users of both servers
#   9. a `/nick` race for one name between the two servers: one wins
#  10. Redis stopped for 5 s, then started: users are told both ways, a
#      line meanwhile is refused with `error: room unavailable`, and chat
#      resumes
#  11. a chat-server killed with SIGKILL: its users' `left` lines reach the
#      other server's users within the roster TTL (3 s) and a refresh
#
# Needs root (ip netns), haproxy, promtool, redis-server, curl and python3. When those are
# missing it fails, or prints `skip: <reason>` and exits 0 if
# CROSS_HOST_OPTIONAL=1.
#
# Environment:
#   BIN_DIR               where echo-server is (default <repo>/target/release;
#                         built there with cargo if missing)
#   CROSS_HOST_OPTIONAL=1 skip instead of failing without root/netns/tools
#   CROSS_HOST_SUBNET     first three octets of the test /24 (10.77.0)
#   CROSS_HOST_KEEP=1     keep the temporary directory with the logs
#
# Usage: sudo deploy/test/cross-host.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEFAULT_BIN_DIR=$REPO/target/release
BIN_DIR=${BIN_DIR:-$DEFAULT_BIN_DIR}
HAPROXY_CFG=$REPO/deploy/haproxy/echo.cfg

SUBNET=${CROSS_HOST_SUBNET:-10.77.0}
CLIENT_IP=$SUBNET.10
LB_IP=$SUBNET.2
APP1_IP=$SUBNET.11
APP2_IP=$SUBNET.12
REDIS_IP=$SUBNET.20
LINE_PORT=4096
ADMIN_PORT=9100
CHAT_PORT=5999
CHAT_ADMIN_PORT=9101
REDIS_PORT=6379
ROSTER_TTL=3

# Unique per run, so that concurrent runs do not collide.
ID=chx$$
NS_SW=$ID-sw
NS_CLIENT=$ID-client
NS_LB=$ID-lb
NS_APP1=$ID-app1
NS_APP2=$ID-app2
NS_REDIS=$ID-redis
NAMESPACES=()   # the ones created so far, deleted on exit
PIDS=()         # processes started in the background, ended on exit
TMP=
HAP_PID=
declare -A APP_PID=()
declare -A CHAT_PID=()
REDIS_PID=
CHAT_HAP_PID=

# --- preconditions ---------------------------------------------------------

unavailable() {
    if [ "${CROSS_HOST_OPTIONAL:-0}" = 1 ]; then
        echo "skip: $*"
        exit 0
    fi
    echo "cross-host: cannot run: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || unavailable "needs root (ip netns)"
for tool in ip haproxy promtool redis-server curl python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || unavailable "$tool is not installed"
done

if [ ! -x "$BIN_DIR/echo-server" ] || [ ! -x "$BIN_DIR/chat-server" ]; then
    if [ "$BIN_DIR" = "$DEFAULT_BIN_DIR" ]; then
        echo "# building echo-server and chat-server"
        (cd "$REPO" && cargo build --release --bin echo-server --bin chat-server)
    fi
    for bin in echo-server chat-server; do
        [ -x "$BIN_DIR/$bin" ] || {
            echo "cross-host: no $bin in $BIN_DIR" >&2
            exit 1
        }
    done
fi
ECHO_SERVER=$BIN_DIR/echo-server
CHAT_SERVER=$BIN_DIR/chat-server
"$CHAT_SERVER" --help 2>/dev/null | grep -q -- --redis || {
    echo "cross-host: $CHAT_SERVER has no --redis option" >&2
    exit 1
}
for opt in --proxy-protocol --proxy-from --admin --drain-file; do
    "$ECHO_SERVER" --help 2>/dev/null | grep -q -- "$opt" || {
        echo "cross-host: $ECHO_SERVER has no $opt option" >&2
        exit 1
    }
done

# --- cleanup ---------------------------------------------------------------

print_logs() {
    local f
    for f in app1.log app2.log haproxy.log chat1.log chat2.log chat-haproxy.log redis.log; do
        if [ -z "$TMP" ] || [ ! -f "$TMP/$f" ]; then continue; fi
        echo "# --- last lines of $f ---"
        tail -n 25 "$TMP/$f" | sed 's/^/#   /'
    done
}

# True while PID is a live (or unreaped) child of this script: a PID that
# has been reaped may be reused by someone else's process.
is_child() {
    local stat state ppid
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r state ppid _ <<<"${stat##*) }"
    [ "$ppid" = "$$" ] && [ "$state" != Z ]
}

LOGS_SHOWN=0
cleanup() {
    local rc=$? pid ns i
    trap - EXIT INT TERM
    set +e
    if [ "$rc" != 0 ] && [ "$LOGS_SHOWN" = 0 ]; then
        print_logs
    fi
    # Everything this script started and that still runs, politely first.
    local alive
    for pid in "${PIDS[@]}"; do
        is_child "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    for i in $(seq 30); do
        alive=0
        for pid in "${PIDS[@]}"; do
            is_child "$pid" && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        is_child "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    # Anything still inside this run's namespaces was started by it too
    # (HAProxy workers, clients).
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
    done
    wait 2>/dev/null
    # Hosts first (their veth ends go with them), the switch last.
    for ((i = ${#NAMESPACES[@]} - 1; i >= 0; i--)); do
        ip netns del "${NAMESPACES[i]}" 2>/dev/null
    done
    if [ -n "$TMP" ]; then
        if [ "${CROSS_HOST_KEEP:-0}" = 1 ]; then
            echo "# logs kept in $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- network ---------------------------------------------------------------

ip netns add "$NS_SW" 2>/dev/null || unavailable "ip netns add failed (no network namespaces here?)"
NAMESPACES+=("$NS_SW")
ip -n "$NS_SW" link set lo up
ip -n "$NS_SW" link add br0 type bridge
ip -n "$NS_SW" link set br0 up

add_host() { # namespace address
    local ns=$1 addr=$2 port=p$((${#NAMESPACES[@]}))
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip -n "$NS_SW" link add "$port" type veth peer name eth0 netns "$ns"
    ip -n "$NS_SW" link set "$port" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
}
add_host "$NS_CLIENT" "$CLIENT_IP"
add_host "$NS_LB" "$LB_IP"
add_host "$NS_APP1" "$APP1_IP"
add_host "$NS_APP2" "$APP2_IP"
add_host "$NS_REDIS" "$REDIS_IP"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cross-host.XXXXXX")

# --- helpers ---------------------------------------------------------------

cat >"$TMP/tool.py" <<'PY'
"""Clients for cross-host.sh. Every socket operation has a timeout."""
import socket, sys, time

def connect(host, port):
    return socket.create_connection((host, int(port)), timeout=3)

def ask(sock, buf, text):
    """Sends one line, returns (reply line, leftover bytes)."""
    sock.sendall(text.encode() + b"\n")
    while b"\n" not in buf:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("closed by peer")
        buf += data
    line, buf = buf.split(b"\n", 1)
    return line.decode(errors="replace"), buf

def expect(sock, buf, text):
    reply, buf = ask(sock, buf, text)
    if reply != "You said: " + text:
        raise ValueError("sent %r, got %r" % (text, reply))
    return buf

def lines(host, port, conns, count, tag):
    """Opens `conns` sessions one after another, each kept open (so that
    leastconn spreads them), then sends `count` lines on each."""
    socks = []
    try:
        for c in range(int(conns)):
            s = connect(host, port)
            socks.append([s, expect(s, b"", "%s c%d hello" % (tag, c))])
        for i in range(int(count)):
            for c, entry in enumerate(socks):
                entry[1] = expect(entry[0], entry[1], "%s c%d line %d" % (tag, c, i))
    except Exception as e:
        print("# %s: %s: %s" % (tag, type(e).__name__, e))
        return 1
    finally:
        for s, _ in socks:
            s.close()
    print("# %s: %s sessions x %s lines answered" % (tag, conns, int(count) + 1))
    return 0

def session(host, port, secs, interval, portfile):
    """One session, a line every `interval` seconds for `secs` seconds; its
    local port goes to `portfile` once the first reply is in."""
    try:
        s = connect(host, port)
        buf = expect(s, b"", "session start")
        with open(portfile + ".tmp", "w") as f:
            f.write("%d\n" % s.getsockname()[1])
        import os
        os.rename(portfile + ".tmp", portfile)
        n, end = 0, time.time() + float(secs)
        while time.time() < end:
            time.sleep(float(interval))
            n += 1
            buf = expect(s, buf, "session line %d" % n)
        s.close()
    except Exception as e:
        print("# session: %s: %s" % (type(e).__name__, e))
        return 1
    print("# session: %d lines answered on one connection" % (n + 1))
    return 0

def loop(host, port, secs):
    """Short connections (connect, one line, close) for `secs` seconds."""
    ok, failed, errors = 0, 0, {}
    end, i = time.time() + float(secs), 0
    while time.time() < end:
        i += 1
        try:
            s = connect(host, port)
            try:
                expect(s, b"", "loop %d" % i)
            finally:
                s.close()
            ok += 1
        except Exception as e:
            failed += 1
            key = "%s: %s" % (type(e).__name__, e)
            errors[key] = errors.get(key, 0) + 1
    print("# loop: %d connections answered, %d failed %s" % (ok, failed, errors or ""))
    return 0 if ok > 0 and failed == 0 else 1

def hap(sockpath, command):
    """One command to HAProxy's runtime API; returns its answer."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(sockpath)
    s.sendall(command.encode() + b"\n")
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            break
        out += data
    s.close()
    return out.decode()

def status(sockpath, backend, server):
    """Prints a server's status as HAProxy sees it (UP, DOWN, UP 1/2...)."""
    try:
        for row in hap(sockpath, "show stat").splitlines():
            f = row.split(",")
            if len(f) > 17 and f[0] == backend and f[1] == server:
                print(f[17])
                return 0
    except OSError:
        pass
    print("unknown")
    return 0

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"lines": lines, "session": session, "loop": loop,
              "status": status}[cmd](*args))
PY

cat >"$TMP/chat.py" <<'PY'
"""Chat users for cross-host.sh's room across servers. Every socket
operation has a timeout. Each check prints comment lines and exits 0 or 1."""
import socket, subprocess, sys, time

UNAVAILABLE = "room unavailable: reconnecting"
BACK = "room available again"

class User:
    """A user connected through HAProxy, welcome read; `server` is the
    application host (1 or 2) whose log names its connection."""
    def __init__(self, host, port, logs):
        self.s = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""
        you = self.line()
        if not you.startswith("you are "):
            raise ValueError("expected 'you are', got %r" % you)
        self.name = you[len("you are "):]
        self.present = self.line()
        self.expect("%s arrived" % self.name)
        self.server = where(self.s.getsockname(), logs)

    def line(self):
        while b"\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("%s: closed by the server" % self.name)
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def say(self, text):
        self.s.sendall(text.encode() + b"\n")

    def expect(self, want):
        got = self.line()
        if got != want:
            raise ValueError("%s expected %r, got %r" % (self.name, want, got))

def where(local, logs):
    needle = "arrived from %s:%d" % local
    end = time.time() + 5
    while time.time() < end:
        for i, path in enumerate(logs):
            with open(path, errors="replace") as f:
                if needle in f.read():
                    return i + 1
        time.sleep(0.05)
    raise ValueError("no chat-server logged %r" % needle)

def users(host, port, logs, servers):
    """Users on the given servers, in turn (HAProxy's leastconn places
    them); each earlier user hears each later one arrive."""
    out = []
    for want in servers:
        for attempt in range(20):
            u = User(host, port, logs)
            for earlier in out:
                earlier.expect("%s arrived" % u.name)
            if u.server == want:
                break
            # HAProxy still counted a session just closed: again.
            u.s.close()
            for earlier in out:
                earlier.expect("%s left" % u.name)
            time.sleep(0.1)
        else:
            raise ValueError("no user went to app%d" % want)
        out.append(u)
    return out

def order(host, port, log1, log2):
    us = users(host, port, [log1, log2], [1, 2, 1, 2])
    rounds = 10
    for r in range(rounds):
        for u in us:
            u.say("%s line %d" % (u.name, r))
    seen = [[u.line() for _ in range(rounds * len(us))] for u in us]
    for u, s in zip(us[1:], seen[1:]):
        if s != seen[0]:
            raise ValueError("%s saw another order" % u.name)
    for u in us:
        mine = [l for l in seen[0] if l.startswith(u.name + " says ")]
        if mine != ["%s says '%s line %d'" % (u.name, u.name, r) for r in range(rounds)]:
            raise ValueError("%s's lines out of order or missing" % u.name)
    print("# %s on app1, %s on app2: all saw the same %d lines in one order"
          % (" ".join(u.name for u in us if u.server == 1),
             " ".join(u.name for u in us if u.server == 2), len(seen[0])))

def present(host, port, log1, log2):
    us = users(host, port, [log1, log2], [1, 2, 1])
    want = "present: " + " ".join(u.name for u in us[:2])
    if us[2].present != want:
        raise ValueError("newcomer was told %r, not %r" % (us[2].present, want))
    us[0].say("/who")
    us[0].expect("present: " + " ".join(u.name for u in us))
    print("# a newcomer on app1 was told %r" % us[2].present)

def nick(host, port, log1, log2):
    us = users(host, port, [log1, log2], [1, 2])
    for r in range(3):
        name = "racer%d" % r
        for u in us:
            u.say("/nick " + name)
        taken = "error: the name %s is taken" % name
        renames, losers = set(), []
        for i, u in enumerate(us):
            first = u.line()
            if first == taken:
                losers.append(i)
                renames.add(u.line())
            elif first == "%s is now known as %s" % (u.name, name):
                renames.add(first)
            else:
                renames.add(first)
                u.expect(taken)
                losers.append(i)
        if len(losers) != 1 or len(renames) != 1:
            raise ValueError("round %d: losers %s, renames %s" % (r, losers, renames))
        winner = us[1 - losers[0]]
        print("# /nick %s from both servers: app%d's %s won, the other was told it is taken"
              % (name, winner.server, winner.name))
        winner.name = name

def outage(host, port, log1, log2, stop, start):
    us = users(host, port, [log1, log2], [1, 2])
    t0 = time.time()
    subprocess.run(stop, shell=True, check=True)
    for u in us:
        u.expect(UNAVAILABLE)
    told = time.time() - t0
    us[0].say("lost in the outage")
    us[0].expect("error: room unavailable")
    time.sleep(max(0, 5 - (time.time() - t0)))
    t1 = time.time()
    subprocess.run(start, shell=True, check=True)
    for u in us:
        u.expect(BACK)
        if not u.line().startswith("present:"):
            raise ValueError("%s: no present: line after %r" % (u.name, BACK))
    back = time.time() - t1
    us[1].say("after the outage")
    said = "%s says 'after the outage'" % us[1].name
    for u in us:
        while True:
            line = u.line()
            if line == said:
                break
            if line.startswith("you are "):
                u.name = line[len("you are "):]
            elif not line.endswith(" arrived"):
                raise ValueError("%s got %r" % (u.name, line))
    print("# Redis stopped: users told in %.1f s; a line meanwhile refused; "
          "started again after 5 s: told back in %.1f s, chat resumed" % (told, back))

def killed(host, port, log1, log2, kill, ttl):
    us = users(host, port, [log1, log2], [1, 2, 1, 2])
    t0 = time.time()
    subprocess.run(kill, shell=True, check=True)
    want = {"%s left (server lost)" % u.name for u in us if u.server == 2}
    limit = float(ttl) * 4 / 3 + 2
    for u in us:
        if u.server != 1:
            continue
        u.s.settimeout(limit)
        got = {u.line() for _ in want}
        if got != want:
            raise ValueError("%s got %s, not %s" % (u.name, got, want))
    took = time.time() - t0
    if took > limit:
        raise ValueError("the left lines took %.1f s" % took)
    print("# app2 killed: app1's users heard %s after %.1f s (roster TTL %s s)"
          % (" and ".join(sorted(want)), took, ttl))

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        {"order": order, "present": present, "nick": nick, "outage": outage,
         "killed": killed}[cmd](*args)
    except Exception as e:
        print("# %s: %s: %s" % (cmd, type(e).__name__, e))
        sys.exit(1)
PY

tool() { python3 "$TMP/tool.py" "$@"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# Client-side tools, bounded in time. Run them in the background as
# `$CLIENT ... &`, not through a function, so that $! is the process itself.
CLIENT=(timeout 30 ip netns exec "$NS_CLIENT" python3 "$TMP/tool.py")
client() { "${CLIENT[@]}" "$@"; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls every 0.1 s.
wait_for() {
    local tries=$(($1 * 10)) what=$2
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            echo "# timed out waiting for $what"
            return 1
        fi
        sleep 0.1
    done
}

# Drops a reaped PID from PIDS.
forget() {
    local keep=() pid
    for pid in "${PIDS[@]}"; do
        [ "$pid" = "$1" ] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# /readyz status code of app N, as HAProxy's host sees it.
readyz() {
    local ip=APP${1}_IP
    ip netns exec "$NS_LB" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
        "http://${!ip}:$ADMIN_PORT/readyz" || true
}
readyz_is() { [ "$(readyz "$1")" = "$2" ]; }

# Completed HAProxy (re)loads so far.
loads() { grep -c 'Loading success' "$TMP/haproxy.log" || true; }
loads_reach() { [ "$(loads)" -ge "$1" ]; }

srv_status() { tool status "$TMP/haproxy.sock" echo_servers "$1"; }
chat_status() { tool status "$TMP/chat-haproxy.sock" chat_servers "$1"; }
chat_is() { [ "$(chat_status "$1")" = "$2" ]; }
srv_is() { [ "$(srv_status "$1")" = "$2" ]; }

# Lines in app N's log naming the client host as the peer.
from_client() { grep -cF "from $CLIENT_IP:" "$TMP/app$1.log" || true; }
# Waits until app N's log holds at least COUNT such lines.
client_lines_reach() { [ "$(from_client "$1")" -ge "$2" ]; }

# The namespace and the address of app host N.
app_host() {
    local ns=NS_APP$1 ip=APP${1}_IP
    echo "${!ns} ${!ip}"
}

start_app() { # N
    local n=$1 ns ip
    read -r ns ip <<<"$(app_host "$n")"
    ip netns exec "$ns" "$ECHO_SERVER" --bind 0.0.0.0 --port "$LINE_PORT" \
        --proxy-protocol --proxy-from "$LB_IP/32" \
        --admin "0.0.0.0:$ADMIN_PORT" --drain-file "$TMP/drain-app$n" \
        --grace 10 --log-level info >>"$TMP/app$n.log" 2>&1 &
    APP_PID[$n]=$!
    PIDS+=($!)
    wait_for 10 "app$n's admin endpoint" \
        in_ns "$NS_LB" curl -fsS --max-time 1 "http://$ip:$ADMIN_PORT/healthz"
}

# Starts Redis on the redis host (a daemon; its pid in redis.pid). A
# script, so that the outage check's client tool can run it too.
cat >"$TMP/redis-start.sh" <<SH
exec ip netns exec "$NS_REDIS" redis-server --bind "$REDIS_IP" --port "$REDIS_PORT" \\
    --save '' --appendonly no --protected-mode no --daemonize yes \\
    --pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log"
SH
start_redis() {
    sh "$TMP/redis-start.sh"
    wait_for 10 "redis to answer" \
        in_ns "$NS_APP1" python3 -c "import socket; socket.create_connection(('$REDIS_IP', $REDIS_PORT), timeout=1)"
}

start_chat() { # N
    local n=$1 ns ip
    read -r ns ip <<<"$(app_host "$n")"
    ip netns exec "$ns" "$CHAT_SERVER" --bind 0.0.0.0 --port "$CHAT_PORT" \
        --proxy-protocol --proxy-from "$LB_IP/32" --admin "0.0.0.0:$CHAT_ADMIN_PORT" \
        --redis "$REDIS_IP:$REDIS_PORT" --server-name "app$n" --roster-ttl "$ROSTER_TTL" \
        --log-level info >>"$TMP/chat$n.log" 2>&1 &
    CHAT_PID[$n]=$!
    PIDS+=($!)
    # Killed by a client tool, not by this shell: no job notice for it.
    disown "$!"
    wait_for 10 "chat$n's admin endpoint" \
        in_ns "$NS_LB" curl -fsS --max-time 1 "http://$ip:$CHAT_ADMIN_PORT/healthz"
}

bail() {
    echo "Bail out! $*"
    print_logs
    LOGS_SHOWN=1
    exit 1
}

# --- start -----------------------------------------------------------------

echo "# namespaces $NS_CLIENT $NS_LB $NS_APP1 $NS_APP2 $NS_REDIS on a bridge in $NS_SW; logs in $TMP"
start_app 1 || bail "app1 did not start"
start_app 2 || bail "app2 did not start"

export ECHO_APP1=$APP1_IP ECHO_APP2=$APP2_IP ECHO_PORT=$LINE_PORT \
    ECHO_ADMIN_PORT=$ADMIN_PORT ECHO_LISTEN=$LB_IP:$LINE_PORT \
    ECHO_STATS_SOCKET=$TMP/haproxy.sock
haproxy -c -q -f "$HAPROXY_CFG" >"$TMP/haproxy-check.log" 2>&1 || {
    sed 's/^/# /' "$TMP/haproxy-check.log"
    bail "haproxy -c rejects $HAPROXY_CFG"
}
# Master-worker mode: a reload (SIGUSR2 to the master) starts new workers
# that take over the listening sockets from the master, so nothing is
# refused while it happens.
ip netns exec "$NS_LB" haproxy -W -S "$TMP/haproxy-master.sock" -f "$HAPROXY_CFG" \
    >"$TMP/haproxy.log" 2>&1 &
HAP_PID=$!
PIDS+=("$HAP_PID")
wait_for 10 "app1 UP in HAProxy" srv_is app1 UP || bail "HAProxy does not see app1 up ($(srv_status app1))"
wait_for 10 "app2 UP in HAProxy" srv_is app2 UP || bail "HAProxy does not see app2 up ($(srv_status app2))"

# --- checks ----------------------------------------------------------------

PASSED=0
FAILED=0
N=0
check() { # description function
    local desc=$1
    shift
    N=$((N + 1))
    if "$@"; then
        echo "ok $N - $desc"
        PASSED=$((PASSED + 1))
    else
        echo "not ok $N - $desc"
        FAILED=$((FAILED + 1))
    fi
}
# Note: a function run as an `if` condition does not stop at a failing
# command under set -e, so each step below ends in `|| return 1`.

check_answered() {
    client lines "$LB_IP" "$LINE_PORT" 4 3 answered || return 1
}

check_client_address() {
    local n lb_re lines
    lb_re=${LB_IP//./\\.}
    for n in 1 2; do
        wait_for 3 "app$n to log the client's address" client_lines_reach "$n" 1 || return 1
        lines=$(grep -E "INFO.*Connection .* from $lb_re:" "$TMP/app$n.log" || true)
        if [ -n "$lines" ]; then
            printf '%s\n' "$lines" | head -n 5 | sed 's/^/# /'
            echo "# app$n logs connections as coming from HAProxy ($LB_IP)"
            return 1
        fi
    done
}

# Milliseconds since $1 (an $EPOCHREALTIME value).
ms_since() {
    local now=$EPOCHREALTIME
    echo $(((${now/./} - ${1/./}) / 1000))
}

check_failover() {
    local rc=0
    failover_kill || rc=1
    # Whatever happened above, app1 comes back for the checks that follow.
    failover_restart || rc=1
    return "$rc"
}

failover_kill() {
    local before t0
    before=$(from_client 2)
    t0=$EPOCHREALTIME
    kill -KILL "${APP_PID[1]}"
    wait "${APP_PID[1]}" 2>/dev/null || true
    forget "${APP_PID[1]}"
    wait_for 2 "HAProxy to mark app1 DOWN" srv_is app1 DOWN ||
        { echo "# app1 is '$(srv_status app1)' 2 s after SIGKILL"; return 1; }
    echo "# app1 killed; HAProxy had it DOWN after $(ms_since "$t0") ms"
    client lines "$LB_IP" "$LINE_PORT" 4 1 after-kill || return 1
    wait_for 3 "app2 to log the new sessions" client_lines_reach 2 $((before + 4)) || return 1
    echo "# all 4 new sessions went to app2"
}

failover_restart() {
    local mark tries=30
    # Restarted, it is taken back after `rise` good checks.
    echo "--- restarted by cross-host.sh ---" >>"$TMP/app1.log"
    mark=$(wc -l <"$TMP/app1.log")
    start_app 1 || { echo "# app1 did not restart"; return 1; }
    wait_for 10 "app1 UP again" srv_is app1 UP || { echo "# app1 is '$(srv_status app1)'"; return 1; }
    client lines "$LB_IP" "$LINE_PORT" 4 1 after-restart || return 1
    until tail -n "+$((mark + 1))" "$TMP/app1.log" | grep -qF "from $CLIENT_IP:"; do
        tries=$((tries - 1))
        [ "$tries" -gt 0 ] || { echo "# the restarted app1 got no session"; return 1; }
        sleep 0.1
    done
    echo "# app1 restarted and taken back"
}

check_drain() {
    local rc=0 n
    drain_one || rc=1
    # Undrained, every server comes back for the checks that follow.
    for n in 1 2; do
        [ -e "$TMP/drain-app$n" ] || continue
        rm -f "$TMP/drain-app$n"
        wait_for 10 "app$n UP again" srv_is "app$n" UP ||
            { echo "# app$n stays '$(srv_status "app$n")' after its drain file went"; rc=1; }
    done
    return "$rc"
}

drain_one() {
    local portfile=$TMP/session.port spid port victim other tries cv co
    local client_re=${CLIENT_IP//./\\.}
    rm -f "$portfile"
    "${CLIENT[@]}" session "$LB_IP" "$LINE_PORT" 5 0.2 "$portfile" >"$TMP/session.out" 2>&1 &
    spid=$!
    PIDS+=("$spid")
    wait_for 5 "the long session to start" test -s "$portfile" || return 1
    port=$(cat "$portfile")
    # Which server holds it?
    victim=
    tries=30
    while [ -z "$victim" ] && [ "$tries" -gt 0 ]; do
        if grep -qE "from $client_re:$port( |\$)" "$TMP/app1.log"; then
            victim=1
        elif grep -qE "from $client_re:$port( |\$)" "$TMP/app2.log"; then
            victim=2
        else
            tries=$((tries - 1))
            sleep 0.1
        fi
    done
    [ -n "$victim" ] || { echo "# no server logged the session from port $port"; return 1; }
    other=$((3 - victim))
    echo "# the long session is on app$victim; draining it"
    cv=$(from_client "$victim")
    co=$(from_client "$other")

    touch "$TMP/drain-app$victim"
    wait_for 3 "/readyz 503 on app$victim" readyz_is "$victim" 503 ||
        { echo "# /readyz on draining app$victim says $(readyz "$victim"), not 503"; return 1; }
    wait_for 5 "app$victim DOWN in HAProxy" srv_is "app$victim" DOWN ||
        { echo "# app$victim is '$(srv_status "app$victim")'"; return 1; }
    client lines "$LB_IP" "$LINE_PORT" 4 1 while-draining || return 1
    wait_for 3 "app$other to log the new sessions" client_lines_reach "$other" $((co + 4)) || return 1
    [ "$(from_client "$victim")" = "$cv" ] ||
        { echo "# draining app$victim got new sessions"; return 1; }
    echo "# all 4 new sessions went to app$other"
    local rc=0
    wait "$spid" || rc=$?
    forget "$spid"
    cat "$TMP/session.out"
    [ "$rc" = 0 ] || { echo "# the session on draining app$victim was not answered to the end"; return 1; }
}

check_reload() {
    local lpid loads0 loads1
    loads0=$(loads)
    "${CLIENT[@]}" loop "$LB_IP" "$LINE_PORT" 3 >"$TMP/loop.out" 2>&1 &
    lpid=$!
    PIDS+=("$lpid")
    sleep 0.8
    kill -USR2 "$HAP_PID"
    sleep 1.2
    kill -USR2 "$HAP_PID"
    local rc=0
    wait "$lpid" || rc=$?
    forget "$lpid"
    cat "$TMP/loop.out"
    wait_for 5 "HAProxy to finish reloading" loads_reach $((loads0 + 2)) ||
        { echo "# HAProxy did not reload twice"; return 1; }
    loads1=$(loads)
    echo "# HAProxy reloaded $((loads1 - loads0)) times"
    [ "$rc" = 0 ] || return 1
}

check_metrics() {
    in_ns "$NS_LB" curl -fsS --max-time 3 "http://$APP1_IP:$ADMIN_PORT/metrics" \
        >"$TMP/metrics.txt" || return 1
    [ -s "$TMP/metrics.txt" ] || { echo "# /metrics is empty"; return 1; }
    if ! promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1; then
        sed 's/^/# /' "$TMP/promtool.out"
        return 1
    fi
    echo "# /metrics: $(grep -vc '^#' "$TMP/metrics.txt") samples, promtool finds no problem"
}

echo "1..11"
check "lines sent through HAProxy are answered" check_answered
check "each server logs the client host's address, not HAProxy's" check_client_address
check "a killed server is taken out within the check interval and back after a restart" check_failover
check "a draining server keeps its session, new connections go to the other" check_drain
check "no connection fails across two HAProxy reloads" check_reload
check "/metrics passes promtool check metrics" check_metrics

# --- one chat room across two servers, through Redis -------------------------

start_redis || bail "redis-server did not start on $REDIS_IP"
start_chat 1 || bail "chat1 did not start"
start_chat 2 || bail "chat2 did not start"
export CHAT_APP1=$APP1_IP CHAT_APP2=$APP2_IP CHAT_PORT CHAT_ADMIN_PORT \
    CHAT_LISTEN=$LB_IP:$CHAT_PORT CHAT_STATS_SOCKET=$TMP/chat-haproxy.sock
ip netns exec "$NS_LB" haproxy -f "$REPO/deploy/haproxy/chat.cfg" >"$TMP/chat-haproxy.log" 2>&1 &
CHAT_HAP_PID=$!
PIDS+=("$CHAT_HAP_PID")
wait_for 10 "chat app1 UP" chat_is app1 UP || bail "HAProxy does not see chat app1 up ($(chat_status app1))"
wait_for 10 "chat app2 UP" chat_is app2 UP || bail "HAProxy does not see chat app2 up ($(chat_status app2))"
CHAT=(timeout 60 ip netns exec "$NS_CLIENT" python3 "$TMP/chat.py")
chat() { # check args...
    local name=$1
    shift
    "${CHAT[@]}" "$name" "$LB_IP" "$CHAT_PORT" "$TMP/chat1.log" "$TMP/chat2.log" "$@"
}

check_chat_order() { chat order || return 1; }
check_chat_present() { chat present || return 1; }
check_chat_nick() { chat nick || return 1; }
check_chat_outage() {
    chat outage "kill -TERM \$(cat $TMP/redis.pid)" "sh $TMP/redis-start.sh" || return 1
}
check_chat_killed() {
    local rc=0
    chat killed "kill -KILL ${CHAT_PID[2]}" "$ROSTER_TTL" || rc=1
    forget "${CHAT_PID[2]}"
    return "$rc"
}

check "two users on each chat-server see every line in one order" check_chat_order
check "a newcomer's present: line lists the users of both servers" check_chat_present
check "a /nick race between the servers has exactly one winner" check_chat_nick
check "Redis stopped for 5 s: told both ways, lines refused meanwhile, chat resumes" check_chat_outage
check "a killed chat-server's users are announced left by the other" check_chat_killed

if [ "$FAILED" != 0 ]; then
    print_logs
    LOGS_SHOWN=1
fi
echo "cross-host: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
