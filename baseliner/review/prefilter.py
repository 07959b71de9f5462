"""
Hints: cheap necessary conditions for the scrubber's patterns, so that a pattern runs only over
text it could match. Nearly every pattern needs some literal (``AKIA``, ``://``, ``@``, a keyword);
``"AKIA" in text`` is a C scan at hundreds of MB/s, where the pattern itself, tried at every
position of the text, manages a few. A hint must hold wherever its pattern matches; it may hold
where the pattern does not (then the pattern runs, and finds nothing, as before). So skipping a
pattern whose hint fails never changes the scrubber's output.

Case-insensitive patterns are hinted on ``fold(text)``: lower case, and the four non-ASCII
letters that ``re.IGNORECASE`` matches to ASCII ones (``İ ı ſ K``) mapped to those, so that
``"secret" in fold(text)`` holds wherever ``(?i)secret`` matches, also in ``ſecret``. fold() keeps
every character one character and whitespace whitespace (tests/test_scrub_fast.py checks every
code point), so a hint may also search the folded text with a small case-sensitive pattern.

    >>> fold("PAſſWORD")
    'password'
"""
from __future__ import annotations

import re
from functools import lru_cache

# Every non-ASCII character that re.IGNORECASE matches to an ASCII character, and that one
# (tests/test_scrub_fast.py checks every code point).
ASCII_TWINS = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def fold(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(ASCII_TWINS).lower()


def literal_hint(values):
    """The hint of a case-insensitive pattern matching any of ``values`` (as anonymize's
    ``_literal_re`` builds one): hint(text, folded) holds where one of them occurs in the folded text.
    Always holds if a value is not ASCII (fold() does not map the case twins of other letters)."""
    values = {v for v in values if v and len(v) >= 2}
    if not all(v.isascii() for v in values):
        return lambda text, folded: True
    literals = tuple(sorted(v.lower() for v in values))
    return lambda text, folded: any_in(literals, folded)


def any_in(literals: tuple[str, ...], text: str) -> bool:
    for literal in literals:
        if literal in text:
            return True
    return False


def word_then(words, after: str):
    """hint(folded): one of ``words`` followed by the pattern ``after`` occurs in the folded text.
    One pattern per word, each beginning with its word, which re finds as fast as str.find; one
    alternation of the words re would try at every position of the text."""
    patterns = tuple(re.compile(re.escape(word) + after) for word in words)
    return lambda folded: any(p.search(folded) for p in patterns)


_KEY_WORDS = ("key", "pw", "pass", "token")  # (?:key|pwd|pw|password|pass|token) needs one of these
# ... and in the keyword-style detectors it is followed by (?:"|'|)(?:\]|)(?: *)(?:=|:|:=|=>| +|::):
_key_word_set = word_then(("key", "pwd", "pw", "password", "pass", "token"), r"[\"'\] =:]")
_TELEGRAM = re.compile(r":[0-9A-Za-z_-]{35}")

# detect-secrets 1.5.0's regex detectors, by (pattern, flags): the strings one of which each match
# contains (as compile_hint() takes them), or hint(text, folded). A detector not listed (another
# detect-secrets version) runs over every text, as before.
_I, _U, _X = re.IGNORECASE, re.UNICODE, re.VERBOSE
_AFTER, _Q = r"(?:(?<=\W)|(?<=^))(?:\[|)", r'(?:"|\'|)'  # shared by the keyword-style detectors
DETECTOR_HINTS = {
    (r'(?:\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\s|"|$)', _U): ("AKC",),
    (r'(?:\s|=|:|"|^)AP[\dABCDEF][a-zA-Z0-9]{8,}(?:\s|"|$)', _U): ("AP",),
    (r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", _U):
        ("A3T", "ABIA", "ACCA", "AKIA", "ASIA"),
    (r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\'\"]([0-9a-zA-Z/+]{40})[\'\"]", _I | _U):
        lambda s, f: "aws" in f and any_in(_KEY_WORDS, f) and ("'" in s or '"' in s),
    (r"AccountKey=[a-zA-Z0-9+\/=]{88}", _U): ("AccountKey=",),
    (r"://[^:/\?\#\[\]@!\$\&'\(\)\*\+,;=\s]+:([^:/\?\#\[\]@!\$\&'\(\)\*\+,;=\s]+)@", _U):
        lambda s, f: "://" in s and "@" in s,
    (_AFTER + _Q + r"(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)" + _Q
     + r"(?:\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)" + _Q + r"([0-9a-f]{64})" + _Q, _I | _U):
        lambda s, f: "cl" in f and any_in(_KEY_WORDS, f) and _key_word_set(f),
    (_AFTER + _Q + r"(?:cloudant|cl|clou)(?:_|-|)(?:api|)(?:key|pwd|pw|password|pass|token)" + _Q
     + r"(?:\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)" + _Q + r"([a-z]{24})" + _Q, _I | _U):
        lambda s, f: "cl" in f and any_in(_KEY_WORDS, f) and _key_word_set(f),
    (r"(?:https?\:\/\/)[\w\-]+\:([0-9a-f]{64})\@[\w\-]+\.cloudant\.com", _I | _U): (".cloudant.com",),
    (r"(?:https?\:\/\/)[\w\-]+\:([a-z]{24})\@[\w\-]+\.cloudant\.com", _I | _U): (".cloudant.com",),
    (r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}", _U):
        ("M", "N", "O"),
    (r"(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}", _U):
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    (r"(glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\-]{20,50}(?!\w)", _U):
        ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-"),
    (r"GR1348941[A-Za-z0-9_\-]{20,50}(?!\w)", _U): ("GR1348941",),
    (r"glcbt-([0-9a-fA-F]{2}_)?[A-Za-z0-9_\-]{20,50}(?!\w)", _U): ("glcbt-",),
    (r"glimt-[A-Za-z0-9_\-]{25}(?!\w)", _U): ("glimt-",),
    (r"glptt-[A-Za-z0-9_\-]{40}(?!\w)", _U): ("glptt-",),
    (r"glagent-[A-Za-z0-9_\-]{50,1024}(?!\w)", _U): ("glagent-",),
    (r"gloas-[A-Za-z0-9_\-]{64}(?!\w)", _U): ("gloas-",),
    (_AFTER + _Q + r"(?:ibm(?:_|-|)cloud(?:_|-|)iam|cloud(?:_|-|)iam|ibm(?:_|-|)cloud|ibm(?:_|-|)iam|ibm|iam|cloud|)"
     r"(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)" + _Q + r"(?:\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)" + _Q
     + r"([a-zA-Z0-9_\-]{44}(?![a-zA-Z0-9_\-]))" + _Q, _I | _U):
        lambda s, f: any_in(_KEY_WORDS, f) and _key_word_set(f),
    (_AFTER + _Q + r"(?:(?:ibm)?[-_]?cos[-_]?(?:hmac)?|)(?:_|-|)(?:secret[-_]?(?:access)?[-_]?key)" + _Q
     + r"(?:\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)" + _Q + r"([a-f0-9]{48}(?![a-f0-9]))" + _Q, _I | _U):
        lambda s, f: "secret" in f and "key" in f and _key_word_set(f),
    (r"eyJ[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*?", _U): ("eyJ",),
    (r"[0-9a-z]{32}-us[0-9]{1,2}", _U): ("-us",),
    (r"\/\/.+\/:_authToken=\s*((npm_.+)|([A-Fa-f0-9-]{36})).*", _U): ("/:_authToken=",),
    (r"sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}", _U): ("T3BlbkFJ",),
    ("BEGIN DSA PRIVATE KEY", _U): ("BEGIN DSA PRIVATE KEY",),
    ("BEGIN EC PRIVATE KEY", _U): ("BEGIN EC PRIVATE KEY",),
    ("BEGIN OPENSSH PRIVATE KEY", _U): ("BEGIN OPENSSH PRIVATE KEY",),
    ("BEGIN PGP PRIVATE KEY BLOCK", _U): ("BEGIN PGP PRIVATE KEY BLOCK",),
    ("BEGIN PRIVATE KEY", _U): ("BEGIN PRIVATE KEY",),
    ("BEGIN RSA PRIVATE KEY", _U): ("BEGIN RSA PRIVATE KEY",),
    ("BEGIN SSH2 ENCRYPTED PRIVATE KEY", _U): ("BEGIN SSH2 ENCRYPTED PRIVATE KEY",),
    ("PuTTY-User-Key-File-2", _U): ("PuTTY-User-Key-File-2",),
    (r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9-_]{70,}", _U): ("pypi-AgEIcHlwaS5vcmc",),
    (r"pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9-_]{70,}", _U): ("pypi-AgENdGVzdC5weXBpLm9yZw",),
    (r"SG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}", _U): ("SG.",),
    (r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+", _I | _U): ("xox",),
    (r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+", _I | _U | _X):
        ("hooks.slack.com/services/",),
    (_AFTER + _Q + r"(?:softlayer|sl)(?:_|-|)(?:api|)(?:_|-|)(?:key|pwd|password|pass|token)" + _Q
     + r"(?:\]|)(?: *)(?:=|:|:=|=>| +|::)(?: *)" + _Q + r"([a-z0-9]{64})" + _Q, _I | _U):
        lambda s, f: ("sl" in f or "softlayer" in f) and any_in(_KEY_WORDS, f) and _key_word_set(f),
    (r"(?:http|https)://api.softlayer.com/soap/(?:v3|v3.1)/([a-z0-9]{64})", _I | _U):
        lambda s, f: "softlayer" in f and "/soap/v3" in f,
    (r"sq0csp-[0-9A-Za-z\\\-_]{43}", _U): ("sq0csp-",),
    (r"(?:r|s)k_live_[0-9a-zA-Z]{24}", _U): ("k_live_",),
    (r"\d{8,10}:[0-9A-Za-z_-]{35}", _U): lambda s, f: ":" in s and _TELEGRAM.search(s) is not None,
    (r"AC[a-z0-9]{32}", _U): ("AC",),
    (r"SK[a-z0-9]{32}", _U): ("SK",),
}


def compile_hint(spec, regex: re.Pattern):
    """``(hint, needs_upper)`` for ``regex``. ``spec`` is either a function hint(text, folded) or
    strings: the hint holds where one of them occurs in the text (in the folded text, lower-cased,
    if ``regex`` ignores case). ``needs_upper``: each of those strings has an upper-case ASCII
    letter, so the hint cannot hold where ``fold(text) == text``."""
    if callable(spec):
        return spec, False
    if regex.flags & re.IGNORECASE:
        literals = tuple(literal.lower() for literal in spec)
        return (lambda s, f: any_in(literals, f)), False
    literals = tuple(spec)
    needs_upper = all(any("A" <= c <= "Z" for c in literal) for literal in literals)
    if len(literals) == 1:
        (literal,) = literals
        return (lambda s, f: literal in s), needs_upper
    return (lambda s, f: any_in(literals, s)), needs_upper


def detector_hint(regex: re.Pattern):
    """``(hint, needs_upper)`` for one of detect-secrets' patterns; ``(None, False)`` (run it
    over every text) for one not in DETECTOR_HINTS."""
    spec = DETECTOR_HINTS.get((regex.pattern, regex.flags))
    return (None, False) if spec is None else compile_hint(spec, regex)


@lru_cache(maxsize=1)
def _keyword_patterns():
    """detect-secrets' keyword detector as it scans a string (KeywordDetector.analyze_string with
    no exclusion and no file type): its patterns as (regex, group, anchored), ``anchored`` if the
    pattern begins with the denylist, so that a match begins where a denylist word does; and the
    letters each denylist word begins with ("api_?key": "api"; "contraseña": "contrase")."""
    from detect_secrets.plugins import keyword

    patterns = [(regex, group, regex.pattern.startswith(keyword.DENYLIST_REGEX))
                for regex, group in keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items()]
    starts = set()
    for word in keyword.DENYLIST:
        letters = re.match(r"[a-z]*", word).group()
        starts.add(letters[:-1] if word[len(letters):len(letters) + 1] == "?" else letters)
    starts = {w for w in starts if not any(w != v and w.startswith(v) for v in starts)}  # "priv" finds "private"
    return patterns, tuple(sorted(starts))


def keyword_values(text: str, folded: str):
    """What KeywordDetector().analyze_string(text) yields: the first match of each of its
    patterns. One that begins with the denylist is tried only where a denylist word begins in
    ``folded`` (``fold(text)``), left to right, rather than at every position: the first position
    where it matches is where search() would have found it."""
    patterns, starts = _keyword_patterns()
    positions = None
    for regex, group, anchored in patterns:
        if not anchored:
            match = regex.search(text)
        else:
            if positions is None:
                positions = sorted({i for word in starts for i in find_all(folded, word)})
            match = None
            for i in positions:
                match = regex.match(text, i)
                if match:
                    break
        if match:
            yield match.group(group)


def find_all(text: str, word: str):
    """Every position where ``word`` begins in ``text``."""
    i = text.find(word)
    while i >= 0:
        yield i
        i = text.find(word, i + 1)


def sub_at(pattern: re.Pattern, repl, text: str, starts) -> str:
    """``pattern.sub(repl, text)`` for a pattern that cannot match the empty string and whose
    matches can only begin at one of ``starts`` (ascending): it is tried there alone. sub() takes
    the leftmost match, then the leftmost from its end on; so does this, and match(text, i) at a
    position is what search() tries there (look-behinds and \\b see the text before it)."""
    parts, last = [], 0
    for i in starts:
        if i < last:
            continue
        m = pattern.match(text, i)
        if m:
            parts += [text[last:m.start()], repl(m) if callable(repl) else m.expand(repl)]
            last = m.end()
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)
