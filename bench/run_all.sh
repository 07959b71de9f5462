#!/usr/bin/env bash
# Every figure in bench/RESULTS.md, in one go (about 30 minutes on 2 cores), as root:
#   bash bench/run_all.sh [out-dir]
# Logs and JSON go to out-dir (default /tmp/bench-results); each script prints its own table.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/bench-results}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
mkdir -p "$OUT"
bash bench/setup_peers.sh >/dev/null
run() { local name=$1; shift; echo "== $name: $* ($(date -u +%H:%M:%S), $(cut -d' ' -f1-3 /proc/loadavg))"; timeout 900 "$PY" "$@" >"$OUT/$name.log" 2>&1; echo "   exit $? ($(date -u +%H:%M:%S))"; grep '^|' "$OUT/$name.log"; }
run peers bench/peers.py --targets ${PEERS:-openssh,openssh-tmux,paramiko,paramiko-tmux,asyncssh-tmux,webssh,baseliner,baseliner-norec} --json "$OUT/peers.json"
run ws-floor bench/ws_floor.py
# Is the ASGI server the limit? The same apps and client through four of them.
run ws-servers bench/ws_floor.py --paths /,/direct --servers uvicorn,granian,hypercorn,daphne
run ssh-connect bench/ssh_connect.py --variants plain,nodelay,product,asyncssh
# The floor under any web terminal at N=200: the SSH library alone (paramiko, asyncssh) or one
# OpenSSH client per expert, on the same sshd + tmux sessions, typed at the same way.
for lib in openssh paramiko asyncssh; do
  run "floor-$lib" bench/concurrency.py --target $lib --n ${FLOOR_N:-200} --duration 12 --no-storm --json "$OUT/floor-$lib.json"
done
run conc-webssh bench/concurrency.py --target webssh --duration 12 --profile "$OUT/prof-webssh" --json "$OUT/conc-webssh.json"
run conc-baseliner bench/concurrency.py --target baseliner --workers 2 --duration 12 --profile "$OUT/prof-baseliner" --json "$OUT/conc-baseliner.json"
run conc-baseliner-1w bench/concurrency.py --target baseliner --n 200,400 --duration 12 --no-storm --json "$OUT/conc-baseliner-1w.json"
run conc-norec bench/concurrency.py --target baseliner --workers 2 --no-record --n 200 --duration 12 --no-storm --json "$OUT/conc-norec.json"
run browser bench/browser.py --mb 30 --runs 1
