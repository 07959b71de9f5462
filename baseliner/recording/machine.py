"""Machine-side part of recording: the preparation hook that installs the shell integration.

Listed in ``settings.BASELINER_PREPARE_HOOKS``; the machines app calls it after it has
created the expert's user and home, as ``hook(lease=, client=<admin client>, environment=)``.
"""
from __future__ import annotations

import secrets
import shlex

from provisioning import ssh

from .shell import BASHRC_LINE, TMUX_CONF_TEMPLATE, bashrc_script, hooks_script, integration_paths


class ShellIntegrationError(Exception):
    pass


def _run(client, command: str, *, stdin: str | None = None) -> None:
    result = ssh.run(client, command, stdin=stdin, timeout=60)
    if not result.ok:
        raise ShellIntegrationError(f"shell integration: {command[:80]!r} failed ({result.exit_status}): {result.stderr.strip()[:500]}")


def install_shell_integration(*, lease, client, environment=None) -> None:
    """Install hooks.sh, the terminal's bashrc and tmux.conf; mark direct SSH shells too.
    Idempotent. Gives the lease a nonce if it has none."""
    if not lease.nonce:
        lease.nonce = secrets.token_hex(16)
        lease.save(update_fields=["nonce"])
    state = lease.provider_state or {}
    home = state.get("home") or f"/home/{lease.username}"
    paths = integration_paths(home=home, machine_dir=state.get("machine_dir"))
    q = {k: shlex.quote(v) for k, v in paths.items()}
    _run(client, f"mkdir -p {q['dir']} && chmod 0755 {q['dir']}")
    user = shlex.quote(lease.username)
    # hooks.sh holds the nonce: readable by the expert's own group only (other experts on a
    # shared host must not learn it); the other two files hold nothing secret.
    _run(client, f"umask 077 && cat > {q['hooks']} && chgrp \"$(id -gn {user})\" {q['hooks']} && chmod 0640 {q['hooks']}",
         stdin=hooks_script(lease.nonce))
    for key, content in (("bashrc", bashrc_script(paths["hooks"])), ("tmux_conf", TMUX_CONF_TEMPLATE)):
        _run(client, f"cat > {q[key]} && chmod 0644 {q[key]}", stdin=content)
    rc = shlex.quote(f"{home.rstrip('/')}/.bashrc")
    line = shlex.quote(BASHRC_LINE.format(hooks=paths["hooks"]))
    _run(client, f"if [ ! -e {rc} ]; then touch {rc} && chown {user}: {rc}; fi; "
                 f"grep -qF {shlex.quote(paths['hooks'])} {rc} || printf %s {line} >> {rc}")
