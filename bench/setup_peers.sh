#!/usr/bin/env bash
# The peers the benchmarks compare baseliner with, installed beside the app, never into it:
# webssh 1.6.3 (tornado + paramiko) from PyPI in its own venv under the gitignored .envs/.
# Its tornado is pinned to the version its dependency range (tornado>=4.5.0) resolves to today.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [ ! -x .envs/webssh/bin/wssh ]; then
  "$PY" -m venv .envs/webssh
  .envs/webssh/bin/pip install -q webssh==1.6.3 tornado==6.6.1 paramiko==5.1.0
fi
.envs/webssh/bin/pip show webssh tornado paramiko | grep -E '^(Name|Version)'
# asyncssh, the asyncio SSH client concurrency.py's floor targets compare paramiko with: into
# its own folder (no dependencies: it uses the app's cryptography), put on sys.path by the
# bench harness only. The app itself uses paramiko alone.
if [ ! -d .envs/asyncssh/asyncssh ]; then
  "$PY" -m pip install -q --no-deps --target .envs/asyncssh asyncssh==2.24.1
fi
echo "asyncssh $(grep -o "__version__ = '[^']*'" .envs/asyncssh/asyncssh/version.py)"
# The ASGI servers ws_floor.py --servers compares uvicorn (the app's) with: granian and hypercorn
# (with the pure-Python packages hypercorn needs that the app lacks), into their own folder, put
# at the end of the benchmark servers' PYTHONPATH only. daphne is in the app's venv already.
if [ ! -d .envs/asgi/granian ] || [ ! -d .envs/asgi/hypercorn ]; then
  "$PY" -m pip install -q --no-deps --target .envs/asgi granian==2.8.7 hypercorn==0.18.0 \
    h2==4.4.1 hpack==4.2.0 hyperframe==6.1.0 priority==2.0.0 wsproto==1.3.2
fi
ls .envs/asgi | sed -n 's/^\(granian\|hypercorn\)-\([0-9.]*\)\.dist-info$/\1 \2/p'
