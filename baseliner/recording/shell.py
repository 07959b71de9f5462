"""
Shell integration: the command log's source of truth.

The expert's bash loads ``hooks.sh`` (installed on the machine by
``baseliner.recording.machine.install_shell_integration``). It prints three OSC 133-style
markers, each carrying the lease's nonce so that program output (``cat`` of a file, a
malicious script) cannot forge a command record without knowing it::

    ESC ] 133 ; A ; <nonce> BEL                               a prompt is shown
    ESC ] 133 ; C ; <nonce> ; <t> ; <b64 cwd> ; <b64 cmd> BEL  a command starts (from PS0)
    ESC ] 133 ; D ; <nonce> ; <status> ; <t> BEL              the last command ended

``<t>`` is the machine's ``$EPOCHREALTIME`` (durations are measured on the machine, so they
are right even when the browser is slow to read); cwd and command line are base64 so that
any byte may appear in them. Inside tmux the markers are wrapped in tmux's DCS passthrough,
which tmux unwraps when it forwards them to the attached client (our bridge).

``MarkerParser`` removes *valid* markers from the byte stream before it reaches the browser
and the recording; anything else (a forged marker without the nonce, a broken one) passes
through untouched, where xterm.js ignores it as an unknown OSC sequence.
"""
from __future__ import annotations

import base64
import binascii
import re
import shlex
from dataclasses import dataclass

OSC_START = b"\x1b]133;"
# A marker longer than this is not ours (a 60 KB command line is base64'd to 80 KB).
MAX_MARKER = 256 * 1024


@dataclass(frozen=True)
class Prompt:
    pass


@dataclass(frozen=True)
class CommandStart:
    machine_time: float
    cwd: str
    command: str


@dataclass(frozen=True)
class CommandEnd:
    exit_status: int
    machine_time: float


Marker = Prompt | CommandStart | CommandEnd

_TERMINATOR = re.compile(rb"\x07|\x1b\\")


def _b64(text: bytes) -> str:
    return base64.b64decode(text, validate=True).decode("utf-8", "replace")


class MarkerParser:
    """Feed raw terminal output; get back (output without our markers, markers found).

    Handles markers split across reads: a possible marker start at the end of a chunk is held
    back until the next chunk completes it (or proves it is not one)."""

    def __init__(self, nonce: str):
        self.nonce = nonce.encode()
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, list[Marker]]:
        buf = self._held + data
        self._held = b""
        out = bytearray()
        markers: list[Marker] = []
        pos = 0
        while True:
            start = buf.find(b"\x1b", pos)
            if start < 0:
                out += buf[pos:]
                break
            out += buf[pos:start]
            rest = buf[start:start + len(OSC_START)]
            if len(rest) < len(OSC_START) and OSC_START.startswith(rest):
                self._held = buf[start:]  # maybe the start of a marker: wait for more
                break
            if rest != OSC_START:
                out += b"\x1b"
                pos = start + 1
                continue
            end = _TERMINATOR.search(buf, start + len(OSC_START))
            if end is None:
                if len(buf) - start <= MAX_MARKER:
                    self._held = buf[start:]
                    break
                out += b"\x1b"  # too long to be ours: let it through
                pos = start + 1
                continue
            body = buf[start + len(OSC_START):end.start()]
            marker = self._parse(body)
            if marker is None:
                out += buf[start:end.end()]
            else:
                markers.append(marker)
            pos = end.end()
        return bytes(out), markers

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    def _parse(self, body: bytes) -> Marker | None:
        parts = body.split(b";")
        if len(parts) < 2 or parts[1] != self.nonce or not self.nonce:
            return None
        try:
            if parts[0] == b"A" and len(parts) == 2:
                return Prompt()
            if parts[0] == b"C" and len(parts) == 5:
                return CommandStart(float(parts[2]), _b64(parts[3]), _b64(parts[4]))
            if parts[0] == b"D" and len(parts) == 4:
                return CommandEnd(int(parts[2]), float(parts[3]))
        except (ValueError, binascii.Error):
            return None
        return None


HOOKS_TEMPLATE = r"""# baseliner shell integration (installed by baseliner; do not edit).
# Marks prompts and commands so the attempt's command log records what ran, where, for how
# long and with which exit status. Loaded by the browser terminal's shell and by ~/.bashrc.
[ -n "${__BL_SI-}" ] && return 0
case $- in *i*) ;; *) return 0 ;; esac
__BL_SI=1
# Not exported (no child process sees it) and read-only (a stray assignment cannot break the log).
readonly __bl_nonce=@NONCE@
__bl_osc() {
  if [ -n "${TMUX-}" ]; then printf '\033Ptmux;\033\033]133;%s\007\033\\' "$1"
  else printf '\033]133;%s\007' "$1"; fi
}
__bl_b64() { printf '%s' "$1" | base64 -w0 2>/dev/null; }
__bl_preexec() {
  local h
  h=$(HISTTIMEFORMAT= builtin history 1)
  [[ $h =~ ^[[:space:]]*[0-9]+\*?[[:space:]][[:space:]](.*)$ ]] && h=${BASH_REMATCH[1]}
  __bl_osc "C;$__bl_nonce;$EPOCHREALTIME;$(__bl_b64 "$PWD");$(__bl_b64 "$h")"
}
__bl_prompt() {
  local s=$?
  __bl_osc "D;$__bl_nonce;$s;$EPOCHREALTIME"
  __bl_osc "A;$__bl_nonce"
  return $s
}
# Every command must reach the history list for PS0 to see it.
HISTCONTROL=${HISTCONTROL//ignorespace/}
HISTCONTROL=${HISTCONTROL//ignoreboth/ignoredups}
unset HISTIGNORE
PROMPT_COMMAND="__bl_prompt${PROMPT_COMMAND:+;$PROMPT_COMMAND}"
PS0='$(__bl_preexec)'"${PS0-}"
"""

BASHRC_TEMPLATE = r"""# baseliner: the browser terminal's shell starts with this file (bash --rcfile).
[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
[ -f ~/.bashrc ] && . ~/.bashrc
. @HOOKS@
"""

TMUX_CONF_TEMPLATE = r"""# baseliner: tmux server settings for the browser terminal.
if-shell "test -f ~/.tmux.conf" "source-file ~/.tmux.conf"
set -g allow-passthrough on
set -g history-limit 50000
set -g mouse on
set -g status off
set -sg escape-time 10
"""

# Appended to the expert's ~/.bashrc so direct SSH shells (their own client, VS Code) are
# marked too; guarded, so it is harmless if the file is sourced twice.
BASHRC_LINE = "[ -f {hooks} ] && . {hooks}  # baseliner shell integration\n"


def hooks_script(nonce: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", nonce):  # never a quote, space or ';'
        raise ValueError("the shell-integration nonce must be 8-64 letters, digits, '-' or '_'")
    return HOOKS_TEMPLATE.replace("@NONCE@", nonce)


def bashrc_script(hooks_path: str) -> str:
    return BASHRC_TEMPLATE.replace("@HOOKS@", shlex.quote(hooks_path))


def integration_paths(*, home: str, machine_dir: str | None) -> dict[str, str]:
    """Where the integration files live on a machine: the lease's root-owned folder when there
    is one (the expert cannot change them), else a folder in the expert's home."""
    base = f"{machine_dir.rstrip('/')}/shell" if machine_dir else f"{home.rstrip('/')}/.baseliner"
    return {"dir": base, "hooks": f"{base}/hooks.sh", "bashrc": f"{base}/bashrc", "tmux_conf": f"{base}/tmux.conf"}
