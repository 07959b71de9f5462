#!/usr/bin/env bash
# Installs everything baseliner needs on a fresh Debian machine, idempotently:
#   system packages (OpenSSH server, tmux, Redis, Chromium for browser tests),
#   a Python 3.12 virtual environment in .venv with requirements-dev.txt,
#   the front-end bundle (npm ci + esbuild) into static/dist/.
# Never downloads a browser: Playwright drives Debian's /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------------
need_pkgs=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_pkgs+=(openssh-client)
command -v tmux >/dev/null 2>&1 || need_pkgs+=(tmux)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
command -v rsync >/dev/null 2>&1 || need_pkgs+=(rsync)
command -v setfacl >/dev/null 2>&1 || need_pkgs+=(acl)
command -v sudo >/dev/null 2>&1 || need_pkgs+=(sudo)
# pgrep/pkill/ps: machine teardown ends every process of a lease's users
command -v pkill >/dev/null 2>&1 || need_pkgs+=(procps)
command -v useradd >/dev/null 2>&1 || need_pkgs+=(passwd)
command -v npm >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    log "missing Debian packages (run as root, or install them): ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

# --- Python ------------------------------------------------------------------------------
find_python() {
  for c in "${BASELINER_PYTHON:-}" python3.12 python3.13 /root/.pyenv/versions/3.12.*/bin/python3.12 /usr/bin/python3.12 python3; do
    [ -n "$c" ] || continue
    p=$(command -v "$c" 2>/dev/null) || continue
    if "$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
  PY=$(find_python) || { echo "baseliner needs Python >= 3.12 (Django 6). Set BASELINER_PYTHON." >&2; exit 1; }
  log "creating .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python requirements"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# --- environment virtualenvs (machine-side packages, e.g. torch/Triton; never the app's) ---
# Each environments/<slug>/requirements.txt gets .envs/<slug> built with the interpreter its
# manifest names (prefix_sum: Python 3.11), so the scorer tests run on CPU. Rebuilt only when
# the requirements change.
for req in environments/*/requirements.txt; do
  [ -f "$req" ] || continue
  slug=$(basename "$(dirname "$req")")
  want_py=$(sed -n 's/^python: *\([A-Za-z0-9_.\/-]*\).*/\1/p' "environments/$slug/environment.yaml" 2>/dev/null | head -1)
  want_py=${want_py:-python3}
  # A system-wide interpreter first: the scorer and expert users must be able to run it
  # (/root/.pyenv is not readable by them).
  py=""
  for c in "/usr/bin/$want_py" "$(command -v "$want_py" 2>/dev/null || true)" /root/.pyenv/versions/3.11.*/bin/"$want_py"; do
    [ -n "$c" ] && [ -x "$c" ] && { py=$c; break; }
  done
  [ -n "$py" ] || { echo "environment $slug needs $want_py (install it, e.g. apt-get install $want_py $want_py-venv)" >&2; exit 1; }
  venv=.envs/$slug
  stamp="$venv/.requirements.sha256"
  want=$( (echo "$py"; cat "$req") | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "building $venv ($py, $req)"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
  fi
done

# --- front end ---------------------------------------------------------------------------
lockhash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.lock.sha256 2>/dev/null)" != "$lockhash" ]; then
  log "installing front-end packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lockhash" > node_modules/.lock.sha256
fi
log "building front end"
npm run --silent build >/dev/null
log "setup done"
