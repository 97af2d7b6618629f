#!/usr/bin/env bash
# User-space instructions per in-process message, under callgrind: ours
# (two actors ping-ponging), tokio (two tasks over mpsc on a current-thread
# runtime), and a request/reply round trip of ours. Each case runs twice,
# with 10,000 and 110,000 round trips; the difference divided by the extra
# messages cancels start-up.
#   bench/scripts/instructions-per-message.sh [CASE...]   (pingpong tokio request)
set -euo pipefail
cd "$(dirname "$0")/../.."
exe=$(cargo bench --bench scheduler --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
[[ -x $exe ]] || { echo "cannot find the scheduler bench binary" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
total() { # CASE ROUNDS
    SCHED_CASE=$1 SCHED_ROUNDS=$2 valgrind --tool=callgrind --callgrind-out-file="$work/cg" "$exe" >/dev/null 2>&1
    callgrind_annotate "$work/cg" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}
[[ $# -gt 0 ]] || set -- pingpong tokio request
printf '%-10s %s\n' case "instructions per message (request: per round trip)"
for case in "$@"; do
    a=$(total "$case" 10000)
    b=$(total "$case" 110000)
    if [[ $case == request ]]; then per=100000; else per=200000; fi
    printf '%-10s %s\n' "$case" "$(( (b - a) / per ))"
done
