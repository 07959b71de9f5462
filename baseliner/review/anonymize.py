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

Each pattern runs only over text where a cheap necessary condition says it could match
(``prefilter.py``): the output is the same as running every pattern over every text
(tests/test_scrub_fast.py), at a fraction of the cost.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import socket
from functools import lru_cache

from django.conf import settings

from .prefilter import (
    any_in, compile_hint, detector_hint, find_all, fold, keyword_values, literal_hint, sub_at, word_then,
)

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


@lru_cache(maxsize=1)
def _detectors():
    """detect-secrets' regex detectors as (regex, hint) (prefilter.py): those whose hint can hold
    on any text, those whose hint needs an upper-case letter; and its value detectors."""
    patterns, value_plugins = _detect_secrets_plugins()
    anywhere, upper = [], []
    for regex in patterns:
        hint, needs_upper = detector_hint(regex)
        (upper if needs_upper else anywhere).append((regex, hint))
    return anywhere, upper, value_plugins


# Every entry of detect-secrets' keyword denylist contains one of these.
KEYWORD_HINTS = ("pass", "pwd", "secret", "key", "contrase", "token", "auth", "cred", "api")
# Each of the keyword detector's patterns needs a denylist word (this, folded: its denylist is
# api_?key ... private_?key, db_?pass, key_?pass, password, passwd, pwd, secret, contraseña) and a quote.
KEYWORD_DENYLIST = ("key", "pass", "pwd", "secret", "contrase")

# (hint, pattern): the pattern can only match text that contains one of the hint's strings.
OUR_SECRETS = [
    # Prefixed API keys and tokens (OpenAI/Anthropic sk-, Hugging Face, GitHub, Slack, AWS, Google, W&B-style)
    (("k-",), re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}")),
    (("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{20,}")),
    (("gh",), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}")),
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}")),
    (("AKIA", "ASIA"), re.compile(r"\bA[KS]IA[0-9A-Z]{16}\b")),
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}")),
    (("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    (("-----BEGIN ",), re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)")),
]
OUR_SECRET_PATTERNS = [pattern for _, pattern in OUR_SECRETS]
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

# Hints (prefilter.py): HINTS[pattern](text, fold(text)) holds wherever the pattern matches text.
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")  # D.D.D.D, D one to three digits, has .D.D.D
# A host name ends in .TLD; every TLD begins with a letter (the look-ahead, implied by what
# follows it, lets re skip the dots of numbers cheaply).
_HOSTNAME_HINT = re.compile(rf"\.(?=[A-Za-z\u0130\u0131\u017f\u212a])(?:{TLDS})(?![\w\-])", re.IGNORECASE)
# On folded text: the word and a space after it; the word, no space, then (spaces and) = or :.
_bearer_hint = word_then(("bearer", "token", "basic"), r"\s")
_ASSIGNMENT_WORDS = ("api", "token", "secret", "passw", "pwd", "credential", "auth")
_assignment_hint = word_then(_ASSIGNMENT_WORDS, r"\S*\s*[:=]")
HINTS = {
    URL_CREDENTIALS_RE: lambda s, f: "://" in s and "@" in s,
    BEARER_RE: lambda s, f: ("token" in f or "bearer" in f or "basic" in f) and _bearer_hint(f),
    ASSIGNMENT_RE: lambda s, f: ("=" in s or ":" in s) and any_in(_ASSIGNMENT_WORDS, f) and _assignment_hint(f),
    EMAIL_RE: lambda s, f: "@" in s,
    HOME_RE: lambda s, f: "/home/" in s or "/Users/" in s,
    IPV4_RE: lambda s, f: _IPV4_HINT.search(s) is not None,
    IPV6_RE: lambda s, f: "::" in s or s.count(":") >= 7,  # h:h:h:h:h:h:h:h, or "::" in every shorter form
    PROMPT_RE: lambda s, f: "@" in s and ":" in s,
    HOSTNAME_RE: lambda s, f: _HOSTNAME_HINT.search(s) is not None,
    **{pattern: compile_hint(literals, pattern)[0] for literals, pattern in OUR_SECRETS},
}

_NAME_RUN = re.compile(r"[\w.\-]*")


def _run_start(reverse: str, i: int) -> int:
    """Where the run of name characters ([\\w.\\-]) that ends at ``i`` begins, in the text whose
    reverse is ``reverse``."""
    return len(reverse) - _NAME_RUN.match(reverse, len(reverse) - i).end()


def _assignment_starts(text: str, folded: str) -> list[int]:
    """Where a match of ASSIGNMENT_RE can begin: at a word boundary in the run of name characters
    that ends with its secret-sounding word."""
    reverse, starts = text[::-1], set()
    for word in _ASSIGNMENT_WORDS:
        for i in find_all(folded, word):
            starts.update(range(_run_start(reverse, i), i + 1))
    return sorted(starts)


def _hostname_starts(text: str, folded: str) -> list[int]:
    """Where a match of HOSTNAME_RE can begin: it ends in .TLD and starts where its run of name
    characters does (its look-behind refuses any other start)."""
    reverse = text[::-1]
    return sorted({_run_start(reverse, m.start()) for m in _HOSTNAME_HINT.finditer(text)})


# The patterns whose matches can only begin at positions these find (prefilter.sub_at).
STARTS = {ASSIGNMENT_RE: _assignment_starts, HOSTNAME_RE: _hostname_starts}


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
        secrets, emails, hostnames, names = list(secrets), list(emails), list(hostnames), list(names)
        homes = [h.rstrip("/") for h in homes if h and h.rstrip("/")]
        usernames = [u for u in usernames if u and len(u) >= 3]
        self._secrets = _literal_re(secrets, word=False)
        self._homes = _literal_re(homes, word=False)
        self._emails = _literal_re(emails, word=False)
        self._hosts = _literal_re(hostnames)
        self._users = _literal_re(usernames)
        self._names = _literal_re(names)
        # The patterns in order, as (pattern, replacement, hint, starts); the detectors run
        # between the two lists.
        self._before = self._stages(
            (self._secrets, "<secret>", literal_hint(secrets)),
            (URL_CREDENTIALS_RE, r"\1<secret>@"),
            (BEARER_RE, lambda m: m.group(1) + m.group(2) + "<secret>"),
            *((pattern, "<secret>") for pattern in OUR_SECRET_PATTERNS),
        )
        self._after = self._stages(
            (ASSIGNMENT_RE, self._assignment),
            (self._emails, "<email>", literal_hint(emails)),
            (EMAIL_RE, "<email>"),
            (self._homes, "/home/<user>", literal_hint(homes)),
            (HOME_RE, lambda m: m.group(1) + "<user>"),
            (IPV4_RE, "<ip>"),
            (IPV6_RE, "<ip>"),
            (PROMPT_RE, "<user>@<host>"),
            (self._hosts, "<host>", literal_hint(hostnames)),
            (HOSTNAME_RE, lambda m: m.group(0) if self._public(m.group(0)) else "<host>"),
            (self._users, "<user>", literal_hint(usernames)),
            (self._names, "<name>", literal_hint(names)),
        )

    @staticmethod
    def _stages(*stages):
        """(pattern, replacement[, hint]) -> (pattern, replacement, hint, starts); a pattern
        without a hint has one in HINTS; None (no values for it) is left out."""
        return [(stage[0], stage[1], stage[2] if len(stage) > 2 else HINTS[stage[0]], STARTS.get(stage[0]))
                for stage in stages if stage[0] is not None]

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

    def _secret_values(self, text: str, folded: str):
        """What detect-secrets' detectors find in ``text`` (``folded`` is ``fold(text)``), each
        detector run only where its hint holds. Only values of six characters or more count."""
        anywhere, upper, value_plugins = _detectors()
        for regex, hint in anywhere + upper if text != folded else anywhere:
            if hint is not None and not hint(text, folded):
                continue
            for m in regex.finditer(text):
                if len(m.group(0)) >= 6:
                    yield m.group(0)
        quoted = "'" in text or '"' in text  # the keyword and high-entropy detectors need a quote
        if not quoted and "`" not in text:
            return
        for plugin in value_plugins:
            if plugin.__class__.__name__ == "KeywordDetector":
                if not any_in(KEYWORD_DENYLIST, folded) or not any_in(KEYWORD_HINTS, text.lower()):
                    continue  # the keyword detector is the slowest; it only fires near these words
            elif not quoted:
                continue
            try:
                if plugin.__class__.__name__ == "KeywordDetector":
                    found = list(keyword_values(text, folded))  # its analyze_string, faster
                else:
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
        """The patterns in order, each over the text the one before left. A pattern runs only
        where its hint (prefilter.py) holds: that changes what scrubbing costs, not its result."""
        if len(text) < 2:  # every pattern needs two characters or more (a literal value: two)
            return text
        text, folded = self._run(self._before, text, fold(text))
        # Longest first; values of one length in string order (a set's order would make the
        # export depend on the process's hash seed where two such values overlap).
        values = sorted(set(self._secret_values(text, folded)), key=lambda v: (-len(v), v)) if len(text) >= 6 else ()
        if values:
            new = text
            for value in values:
                if value not in ("<secret>", "secret"):
                    new = new.replace(value, "<secret>")
            if new != text:
                text, folded = new, fold(new)
        return self._run(self._after, text, folded)[0]

    @staticmethod
    def _run(stages, text: str, folded: str) -> tuple[str, str]:
        for pattern, repl, hint, starts in stages:
            if hint(text, folded):
                new = pattern.sub(repl, text) if starts is None else sub_at(pattern, repl, text, starts(text, folded))
                if new != text:
                    text, folded = new, fold(new)
        return text, folded

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
