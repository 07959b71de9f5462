"""
The scrubber's algorithm as it was before its pre-filters (main at ac22ee6, with detector values
of equal length replaced in string order rather than a set's hash order): every pattern runs over
every text. tests/test_scrub_fast.py checks that ``Scrubber`` gives byte-identical output;
this copy is the specification it is held to, so change it only together with an intended
change of what the scrubber replaces.
"""
from baseliner.review.anonymize import (
    ASSIGNMENT_RE, BEARER_RE, EMAIL_RE, HOME_RE, HOSTNAME_RE, IPV4_RE, IPV6_RE, KEYWORD_HINTS,
    OUR_SECRET_PATTERNS, PROMPT_RE, URL_CREDENTIALS_RE, Scrubber, _detect_secrets_plugins,
)


class ReferenceScrubber(Scrubber):
    """``Scrubber`` with the pattern-by-pattern ``scrub`` of ac22ee6 (same constructor; its
    ``scrub_terminal`` is Scrubber's, which calls this ``scrub``)."""

    def _secret_values(self, text: str):
        patterns, value_plugins = _detect_secrets_plugins()
        for regex in patterns:
            for m in regex.finditer(text):
                if len(m.group(0)) >= 6:
                    yield m.group(0)
        lowered = text.lower()
        for plugin in value_plugins:
            if plugin.__class__.__name__ == "KeywordDetector" and not any(w in lowered for w in KEYWORD_HINTS):
                continue
            try:
                found = list(plugin.analyze_string(text))
            except Exception:
                found = []
            for value in found:
                if isinstance(value, str) and len(value) >= 6:
                    yield value

    def scrub(self, text: str) -> str:
        if not text:
            return text
        if self._secrets:
            text = self._secrets.sub("<secret>", text)
        text = URL_CREDENTIALS_RE.sub(r"\1<secret>@", text)
        text = BEARER_RE.sub(lambda m: m.group(1) + m.group(2) + "<secret>", text)
        for pattern in OUR_SECRET_PATTERNS:
            text = pattern.sub("<secret>", text)
        for value in sorted(set(self._secret_values(text)), key=lambda v: (-len(v), v)):
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
