"""
Anonymization for exports: pseudonymous IDs and a scrubber for free text.

Pseudonyms are keyed HMACs (SHA-256) of the database id, so they are stable across exports
made with the same ``EXPORT_PSEUDONYM_KEY`` and unlinkable without it — a plain hash of an id
or username could be reversed by hashing every candidate::

    >>> pseudonym("expert", 42, key="k")      # doctest: +SKIP
    'E-3f0c9a1d5b7e2c48'

The scrubber replaces, in this order: known literals of the attempt (the expert's username,
Unix user, names, e-mail, home path, machine host names, per-lease secrets), secrets found by
detect-secrets' maintained detectors plus our patterns for API keys and ``KEY=value``
assignments, e-mail addresses, IP addresses, ``user@host:`` prompts and host names (except public
ones listed in ``EXPORT_PUBLIC_HOSTS``), and any other ``/home/<name>`` path. Replacements are
visible markers (``<secret>``, ``<email>``, ``<ip>``, ``<host>``, ``<user>``, ``<name>``), so a
command stays readable: ``curl -H 'Authorization: Bearer <secret>' https://<host>/v1``.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import socket
from functools import lru_cache

from django.conf import settings

ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def pseudonym(kind: str, pk: int, *, key: str | None = None) -> str:
    """A stable pseudonymous id: ``E-…`` for experts, ``A-…`` for attempts."""
    key = settings.EXPORT_PSEUDONYM_KEY if key is None else key
    digest = hmac.new(key.encode(), f"baseliner:{kind}:{pk}".encode(), hashlib.sha256).hexdigest()
    return f"{kind[0].upper()}-{digest[:16]}"


def key_id(key: str | None = None) -> str:
    """A short one-way fingerprint of the key, so readers can tell whether two bundles share
    pseudonyms without learning the key."""
    key = settings.EXPORT_PSEUDONYM_KEY if key is None else key
    return hashlib.sha256(b"baseliner-export-key-id:" + key.encode()).hexdigest()[:12]


# --- secret detection -----------------------------------------------------------------------

@lru_cache(maxsize=1)
def _detect_secrets_plugins():
    """detect-secrets' regex detectors (their full-match patterns) and its keyword and
    high-entropy detectors (which yield the secret value)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
    from detect_secrets.plugins.keyword import KeywordDetector

    patterns = []
    for cls in get_mapping_from_secret_type_to_class().values():
        if issubclass(cls, RegexBasedDetector) and cls.__name__ != "IPPublicDetector":  # IPs: ours, all of them
            patterns.extend(cls().denylist)
    value_plugins = [KeywordDetector(), Base64HighEntropyString(limit=4.5), HexHighEntropyString(limit=3.0)]
    return patterns, value_plugins


# Every entry of detect-secrets' keyword denylist contains one of these.
KEYWORD_HINTS = ("pass", "pwd", "secret", "key", "contrase", "token", "auth", "cred", "api")

OUR_SECRET_PATTERNS = [
    # Prefixed API keys and tokens (OpenAI/Anthropic sk-, Hugging Face, GitHub, Slack, AWS, Google, W&B-style)
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\bA[KS]IA[0-9A-Z]{16}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
]
# NAME=value / NAME: value where the name says it is secret; the name stays, the value goes.
ASSIGNMENT_RE = re.compile(
    r"(?i)(\b[\w.\-]*(?:api[_\-]?key|apikey|token|secret|passw(?:or)?d|passwd|pwd|credential|auth)[\w.\-]*\b[\"']?\s*[:=]\s*)"
    r"(\"[^\"\s]{4,}\"|'[^'\s]{4,}'|[^\s\"';&|]{4,})"
)
BEARER_RE = re.compile(r"(?i)\b(bearer|token|basic)(\s+)([A-Za-z0-9_\-\.=+/]{12,})")
URL_CREDENTIALS_RE = re.compile(r"(?i)([a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@")

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
IPV4_RE = re.compile(r"(?<![\d.])(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?![\d.])")
IPV6_RE = re.compile(
    r"(?<![0-9A-Fa-f:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
    r"|(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?|::1)(?![0-9A-Fa-f:])"
)
PROMPT_RE = re.compile(r"\b[a-z_][a-z0-9_\-]{0,31}@[A-Za-z0-9][A-Za-z0-9\-.]{0,62}(?=:)")
# Host names: a two-label name counts only under an unambiguous TLD (``df.info`` or ``np.int``
# in a Python one-liner is code, ``example.com`` is a host); three labels or more under any
# common TLD (``gpu3.lab.example.de``).
STRONG_TLDS = "com|org|net|edu|gov|io|ai|internal|lan|corp|localdomain|example|cloud"
TLDS = (
    STRONG_TLDS + "|dev|app|local|home|co|uk|de|fr|nl|ch|se|no|fi|dk|es|it|pl|cz|at|be|us|ca|au|nz|jp|cn|kr|in|br|ru|"
    "info|biz|me|xyz|tech|site|online|test"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(
    rf"(?<![\w.\-@])(?:(?:{_LABEL}\.){{2,}}(?:{TLDS})|{_LABEL}\.(?:{STRONG_TLDS}))(?![\w\-])", re.IGNORECASE
)
HOME_RE = re.compile(r"(/home/|/Users/)(?!<user>)[^/\s\"':;]+")


def _literal_re(values: list[str], *, word: bool = True) -> re.Pattern | None:
    values = sorted({v for v in values if v and len(v) >= 2}, key=len, reverse=True)
    if not values:
        return None
    body = "|".join(re.escape(v) for v in values)
    return re.compile(rf"(?<![A-Za-z0-9]){'(?:' + body + ')'}(?![A-Za-z0-9])" if word else body, re.IGNORECASE)


class Scrubber:
    """Scrubs free text of one attempt's personal data and secrets. Build one per attempt
    (``Scrubber.for_attempt``); ``scrub(text)`` is pure and safe to call per line."""

    def __init__(self, *, usernames=(), names=(), emails=(), homes=(), hostnames=(), secrets=(), public_hosts=None):
        self.public_hosts = [h.lower() for h in (settings.EXPORT_PUBLIC_HOSTS if public_hosts is None else public_hosts)]
        self._secrets = _literal_re(list(secrets), word=False)
        self._homes = _literal_re([h.rstrip("/") for h in homes if h and h.rstrip("/")], word=False)
        self._emails = _literal_re(list(emails), word=False)
        self._hosts = _literal_re(list(hostnames))
        self._users = _literal_re([u for u in usernames if u and len(u) >= 3])
        self._names = _literal_re(list(names))

    @classmethod
    def for_attempt(cls, attempt) -> "Scrubber":
        user = attempt.expert
        usernames = [user.get_username()]
        names = [user.first_name, user.last_name, user.get_full_name()]
        emails = [user.email]
        homes, hostnames, secrets = [], [socket.gethostname(), socket.getfqdn()], []
        for lease in attempt.leases.select_related("host"):
            usernames.append(lease.username)
            if lease.username:
                homes.append(f"/home/{lease.username}")
            state = lease.provider_state or {}
            for key, value in state.items():
                if not isinstance(value, str):
                    continue
                if key == "home":
                    homes.append(value)
                elif any(w in key.lower() for w in ("token", "secret", "password", "key")) and len(value) >= 8:
                    secrets.append(value)
                elif "host" in key.lower():
                    hostnames.append(value)
            if lease.nonce:
                secrets.append(lease.nonce)
            hostnames.append(lease.address)
            if lease.host:
                hostnames += [lease.host.name, lease.host.address]
        hostnames = [h for h in hostnames if h and h not in ("localhost",) and not IPV4_RE.fullmatch(h)]
        return cls(usernames=usernames, names=[n for n in names if n], emails=emails, homes=homes,
                   hostnames=hostnames, secrets=secrets)

    def _public(self, host: str) -> bool:
        h = host.lower().rstrip(".")
        return any(h == p or h.endswith("." + p) for p in self.public_hosts)

    def _secret_values(self, text: str):
        patterns, value_plugins = _detect_secrets_plugins()
        for regex in patterns:
            for m in regex.finditer(text):
                if len(m.group(0)) >= 6:
                    yield m.group(0)
        lowered = text.lower()
        for plugin in value_plugins:
            if plugin.__class__.__name__ == "KeywordDetector" and not any(w in lowered for w in KEYWORD_HINTS):
                continue  # the keyword detector is the slowest; it only fires near these words
            try:
                found = list(plugin.analyze_string(text))
            except Exception:  # a detector's heuristic failing must not fail the export
                found = []
            for value in found:
                if isinstance(value, str) and len(value) >= 6:
                    yield value

    @staticmethod
    def _assignment(m) -> str:
        value = m.group(2).strip("\"'")
        if "<secret>" in value or value.lower() in ("bearer", "basic", "token"):
            return m.group(0)
        return m.group(1) + "<secret>"

    def scrub(self, text: str) -> str:
        if not text:
            return text
        if self._secrets:
            text = self._secrets.sub("<secret>", text)
        text = URL_CREDENTIALS_RE.sub(r"\1<secret>@", text)
        text = BEARER_RE.sub(lambda m: m.group(1) + m.group(2) + "<secret>", text)
        for pattern in OUR_SECRET_PATTERNS:
            text = pattern.sub("<secret>", text)
        for value in sorted(set(self._secret_values(text)), key=len, reverse=True):
            if value not in ("<secret>", "secret"):
                text = text.replace(value, "<secret>")
        text = ASSIGNMENT_RE.sub(self._assignment, text)
        if self._emails:
            text = self._emails.sub("<email>", text)
        text = EMAIL_RE.sub("<email>", text)
        if self._homes:
            text = self._homes.sub("/home/<user>", text)
        text = HOME_RE.sub(lambda m: m.group(1) + "<user>", text)
        text = IPV4_RE.sub("<ip>", text)
        text = IPV6_RE.sub("<ip>", text)
        text = PROMPT_RE.sub("<user>@<host>", text)
        if self._hosts:
            text = self._hosts.sub("<host>", text)
        text = HOSTNAME_RE.sub(lambda m: m.group(0) if self._public(m.group(0)) else "<host>", text)
        if self._users:
            text = self._users.sub("<user>", text)
        if self._names:
            text = self._names.sub("<name>", text)
        return text

    def scrub_json(self, value):
        """Scrub every string (and key) of a JSON-like value."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_json(v) for k, v in value.items()}
        return value

    def scrub_terminal(self, text: str) -> str:
        """Scrub terminal output, which may interleave escape sequences with the characters of
        a secret (colours, line redraws). If the text without escapes still holds something
        the scrubber would change, the chunk is replaced by its scrubbed plain text: the
        colours of that line are lost, the secret is not leaked."""
        scrubbed = self.scrub(text)
        if "\x1b" not in text:
            return scrubbed
        plain = ANSI_RE.sub("", scrubbed)
        if self.scrub(plain) != plain:
            return self.scrub(ANSI_RE.sub("", text))
        return scrubbed
