"""
One expert on a shared Unix host: the part the ``local`` and ``ssh`` providers have in common.

Every name is per lease, from a random token ``t`` (10 hex digits), so attempts on one host
never see each other and two databases sharing a host never collide (the METR Task Standard
model: the expert is an unprivileged user; the scorer's files belong to root and a
``protected`` group the expert is not in)::

    expert user       bl<t>                    home /home/bl<t> (0750, the expert's)
    protected group   bp<t>
    scorer user       bs<t>  (in bp<t> only)   home <machine_dir>/scorer-home
    machine_dir       /opt/baseliner/leases/<t>            root:root  0755
    protected_dir     /opt/baseliner/leases/<t>/protected  root:bp<t> 0750

The expert's SSH key goes to ``~/.ssh/authorized_keys`` (the expert may add their own key
there too, for their own SSH client). On a GPU host the lease's GPU is exported as
``CUDA_VISIBLE_DEVICES`` by a root-owned ``/etc/profile.d/baseliner-<t>.sh`` for login shells
of the expert and the scorer; the expert can change their own shell's environment (as on any
machine), but not the scorer's: the scorer's environment comes from ``provider_state["env"]``,
which the scoring code passes explicitly. This is a convention, not a fence: a determined
expert could still address another GPU from their own processes (device cgroups would close
that; see the README).
"""
from __future__ import annotations

import re
import secrets
import shlex

from . import ssh
from .base import ProvisionError

LEASES_ROOT = "/opt/baseliner/leases"
LOCK = "/run/baseliner-users.lock"
TOKEN_RE = re.compile(r"^[0-9a-f]{10}$")


def new_state(token: str | None = None) -> dict:
    t = token or secrets.token_hex(5)
    machine_dir = f"{LEASES_ROOT}/{t}"
    return {
        "token": t,
        "home": f"/home/bl{t}",
        "protected_dir": f"{machine_dir}/protected",
        "protected_group": f"bp{t}",
        "scorer_user": f"bs{t}",
        "machine_dir": machine_dir,
        "env": {},
    }


# Runs as root on the machine: $1 token, $2 the expert's public key, $3 "" or the value of
# CUDA_VISIBLE_DEVICES ("-" for none at all). Idempotent: a redelivered task may run it twice.
# useradd and friends fail at once when another process holds /etc/passwd's lock: baseliner's
# own runs are serialized by flock (see _run_locked), anything else is waited out by retrying.
RETRY = r"""
retry() { n=0; until "$@"; do n=$((n+1)); [ $n -ge 50 ] && return 1; sleep 0.2; done; }
"""

CREATE_SCRIPT = RETRY + r"""
set -eu
t=$1; pub=$2; cuda=$3
u=bl$t; s=bs$t; g=bp$t; home=/home/$u; md=/opt/baseliner/leases/$t
getent group "$g" >/dev/null || retry groupadd "$g"
id -u "$u" >/dev/null 2>&1 || retry useradd -m -d "$home" -s /bin/bash -p '*' -U "$u"
id -u "$s" >/dev/null 2>&1 || retry useradd -M -d "$md/scorer-home" -s /bin/bash -p '*' -g "$g" "$s"
chown "$u:$u" "$home"; chmod 0750 "$home"
install -d -o root -g root -m 0755 /opt/baseliner /opt/baseliner/leases "$md"
install -d -o root -g "$g" -m 0750 "$md/protected"
install -d -o "$s" -g "$g" -m 0700 "$md/scorer-home"
install -d -o "$u" -g "$u" -m 0700 "$home/.ssh"
printf '%s\n' "$pub" > "$home/.ssh/authorized_keys"
chown "$u:$u" "$home/.ssh/authorized_keys"; chmod 0600 "$home/.ssh/authorized_keys"
if [ "$cuda" != "-" ] && [ -d /etc/profile.d ]; then
  printf 'case "$(id -un)" in %s|%s) export CUDA_VISIBLE_DEVICES=%s ;; esac\n' "$u" "$s" "$cuda" > "/etc/profile.d/baseliner-$t.sh"
  chmod 0644 "/etc/profile.d/baseliner-$t.sh"
fi
id -u "$u"
"""

# Runs as root: $1 token. Locks the users (no new logins), kills every process they own (their
# shells, tmux servers and sshd sessions), removes their files, users and groups. Safe to run
# on a half-made lease and to run again ("already gone" is success).
TEARDOWN_SCRIPT = RETRY + r"""
set -u
t=$1
case "$t" in ""|*[!0-9a-f]*) echo "refusing a malformed lease token" >&2; exit 2;; esac
u=bl$t; s=bs$t; g=bp$t; home=/home/$u; md=/opt/baseliner/leases/$t
for x in "$u" "$s"; do
  uid=$(id -u "$x" 2>/dev/null) || continue
  retry usermod -L -s /usr/sbin/nologin "$x" >/dev/null 2>&1 || true
  i=0
  while [ $i -lt 100 ] && { pgrep -u "$uid" >/dev/null || pgrep -U "$uid" >/dev/null; }; do
    pkill -KILL -u "$uid" 2>/dev/null; pkill -KILL -U "$uid" 2>/dev/null; sleep 0.1; i=$((i+1))
  done
  find /tmp /var/tmp /dev/shm -xdev -user "$uid" -delete 2>/dev/null || true
  retry userdel -f -r "$x" >/dev/null 2>&1 || retry userdel -f "$x" >/dev/null 2>&1 || true
  if pgrep -u "$uid" >/dev/null || pgrep -U "$uid" >/dev/null; then echo "processes of $x survived" >&2; exit 1; fi
done
getent group "$g" >/dev/null && retry groupdel "$g"
getent group "$u" >/dev/null && retry groupdel "$u"
rm -rf -- "$home" "$md"
rm -f -- "/etc/profile.d/baseliner-$t.sh" "/etc/sudoers.d/baseliner-$s" "/var/mail/$u" "/var/spool/mail/$u"
if id -u "$u" >/dev/null 2>&1 || id -u "$s" >/dev/null 2>&1; then echo "users of lease $t still exist" >&2; exit 1; fi
echo gone
"""


def _run_locked(script: str, args: str) -> str:
    """The command running ``script`` as ``sh`` with ``args``, one at a time per host."""
    command = f"sh -c {shlex.quote(script)} sh {args}"
    return f"if command -v flock >/dev/null; then flock -w 240 {LOCK} {command}; else {command}; fi"


def create_users(client, *, state: dict, expert_public_key: str, cuda: str | None) -> int:
    """Create the lease's users, group and folders (as root); returns the expert's uid."""
    token = state["token"]
    if not TOKEN_RE.match(token):
        raise ProvisionError(f"malformed lease token {token!r}")
    args = " ".join(shlex.quote(a) for a in (token, expert_public_key.strip(), "-" if cuda is None else cuda))
    result = ssh.run(client, _run_locked(CREATE_SCRIPT, args), timeout=300)
    if not result.ok:
        raise ProvisionError(f"creating the expert's user failed ({result.exit_status}): {result.stderr.strip()[-500:]}")
    return int(result.stdout.strip().splitlines()[-1])


def remove_users(client, *, state: dict) -> None:
    """Undo ``create_users`` (as root). Raises ProvisionError if something survived."""
    token = state.get("token", "")
    if not TOKEN_RE.match(token):
        return  # nothing was ever named, so nothing was made
    result = ssh.run(client, _run_locked(TEARDOWN_SCRIPT, shlex.quote(token)), timeout=300)
    if not result.ok:
        raise ProvisionError(f"teardown on the machine failed ({result.exit_status}): {result.stderr.strip()[-500:]}")
