"""
The scrubber's pre-filters change its speed, never its output: over a varied corpus (the planted
data of the export test, every kind of secret detect-secrets and we know, e-mail and IP
addresses, host names, prompts, home paths, names, ANSI-coloured terminal output, case twins
such as ``ſ`` and ``ı`` that ``re.IGNORECASE`` matches to ASCII letters, random mixtures of all
of these) ``Scrubber`` gives exactly what the pattern-by-pattern algorithm of ac22ee6
(tests/scrub_reference.py) gives, and the same digest as that algorithm gave on main.
"""
import hashlib
import random
import re
import sys

import pytest

from baseliner.review import anonymize, prefilter
from baseliner.review.anonymize import HINTS, STARTS, Scrubber, _detectors
from baseliner.review.prefilter import fold
from tests.scrub_reference import ReferenceScrubber

PUBLIC = ["github.com", "pypi.org", "pythonhosted.org", "pytorch.org", "huggingface.co", "nvidia.com"]
USER = "bl5e1f0a9c"
ATTEMPT = dict(
    usernames=["zorblax", USER], names=["Quentin", "Farnsworth", "Quentin Farnsworth"],
    emails=["quentin.f@privatemail.example.org"], homes=[f"/home/{USER}"],
    hostnames=["gpu-node-17", "gpu-node-17.lab.internal", "bench-host"], secrets=["nonce-7c1d9e2f4a6b8c0d"],
)
CONFIGS = {
    "attempt": ATTEMPT,
    "bare": {},
    "non-ascii": dict(usernames=["ſam", "müller"], names=["José", "Müller", "İlkay"], emails=["josé@exämple.org"],
                      homes=["/home/ſam"], hostnames=["knoten-ß.lab"], secrets=["Kelvin-\u212a-secret-1"]),
}

FRAGMENTS = [
    # the export test's planted data
    "export OPENAI_API_KEY=sk-live-9f8e7d6c5b4a3f2e1d0c9b8a7f6e", "scp results.tar quentin.f@privatemail.example.org:/tmp/",
    f"ssh zorblax@10.20.30.40 -i /home/{USER}/.ssh/id_ed25519",
    'curl -H "Authorization: Bearer hf_AbCdEfGhIjKlMnOpQrStUvWxYz123456" https://gpu-node-17.lab.internal:8080/health',
    "python train.py --lr 3e-4 --epochs 2", "ping -c1 fd12:3456:789a::7", f"wrote /home/{USER}/out.txt for zorblax",
    "Quentin asked from 10.20.30.40", "Mail me: quentin.f@privatemail.example.org — Quentin Farnsworth",
    f"\x1b[32m{USER}@gpu-node-17\x1b[0m:~$ ", "Hello Quentin Farnsworth (zorblax), you are 10.20.30.40\r\n",
    "ssh: connect to host gpu-node-17.lab.internal: \x1b[1mhf_AbCdEfGhIj\x1b[0mKlMnOpQrStUvWxYz123456\r\n",
    "nonce-7c1d9e2f4a6b8c0d", "NONCE-7C1D9E2F4A6B8C0D", "QUENTIN", "ZorbLax", "zorblax99", "bench-host",
    # cloud and service credentials
    "AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "A3T0ABCDEFGHIJKLMNOP", "AKC1234567890abcd", " APA1bcdefghijk ",
    'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', "AWS_SESSION_TOKEN='" + "Ab9/" * 10 + "'",
    "ghp_1234567890abcdefghijABCDEFGHIJklmnop", "gho_abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "ghs_short",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxp-1234-5678-abc", "XOXA-12-34-ab",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "eyJhbGciOi.eyJzdWIi", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7Vq\nk3J9x==\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA", "BEGIN PGP PRIVATE KEY BLOCK",
    "PuTTY-User-Key-File-2: ssh-rsa",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_live_4eC39HqLyjWDarjtT1zdp7dc", "ACa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6",
    "SKa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", "SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "0123456789abcdef0123456789abcdef-us12", "bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8 ",
    "MTA4NzY1NDMyMTA5ODc2NTQz.GhIjKl.abcdefghijklmnopqrstuvwxyz0", "pypi-AgEIcHlwaS5vcmc" + "A1b2C3d4E5" * 8,
    "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789", "glpat-abcdefghij0123456789",
    "glptt-" + "a" * 40, "GR1348941abcdefghijklmnopqrstu", "sk-abcdefghij0123456789T3BlbkFJabcdefghij0123456789",
    "sk-proj-AbCdEfGhIjKlMnOpQrStUv", "sk-ant-api03-abcdefghijklmnopqrstu", "pk-12345678901234567890", "rk-short",
    "hf_abcdefghijklmnopqrstuvwx", "AIzaSyA1234567890abcdefghijklmnopqrstu", "AccountKey=" + "Ab1+" * 22,
    "https://admin:hunter2@db.internal.example.com/x", "postgres://user:pa55w0rd@10.0.0.5:5432/db", "git@github.com:acme/x.git",
    "cloudant_password='abcdefghijklmnopqrstuvwx'", "cl_api_key: " + "0123456789abcdef" * 4,
    "https://user:" + "0123456789abcdef" * 4 + "@acct.cloudant.com", "ibm_cloud_iam_key = " + "aB3_-" * 8 + "abcd",
    "secret_access_key = " + "0a1b2c3d" * 6, "softlayer_api_key = " + "a1b2c3d4" * 8,
    "https://api.softlayer.com/soap/v3/" + "a1b2c3d4" * 8, "sq0csp-" + "aB3_-" * 8 + "abc",
    "cl-apikey: " + "0123456789abcdef" * 4, "https://acct:abcdefghijklmnopqrstuvwx@acct.cloudant.com",
    "glcbt-0a_abcdefghij0123456789", "glimt-abcdefghij0123456789abcde", "glagent-" + "x" * 50, "gloas-" + "y" * 64,
    "-----BEGIN DSA PRIVATE KEY-----", "BEGIN EC PRIVATE KEY", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg",
    "BEGIN SSH2 ENCRYPTED PRIVATE KEY", "pypi-AgENdGVzdC5weXBpLm9yZw" + "Z9y8X7w6V5" * 7,
    # keyword detector and assignments
    'password = "hunter22!"', "db_pass: 'opensesame'", 'private_key "abc123xyz";', '"s3cr3tv4lue" == my_password',
    "api_key => 'zzzzzzzz'", 'contraseña: "clave1234"', "PASSWORD='Tr0ub4dor&3'", 'client_key: "k3y-v4lu3"',
    "DB_PASSWORD='p@ss w0rd'", "auth: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Bearer abc.def.ghi.jkl.mno",
    "--token abcdefghijklmnop", "token: bearer", "MY_SECRET=<secret>", "secret", "api-key: 'short'", "pwd=/home/alice",
    "credentials.json: {\"key\": \"AbCdEf123456\"}", "tokens/s 45123", "keyboard monkey passage",
    "{'lr': 0.0003, 'name': \"baseline-run\", 'token': \"tok_9f8e7d6c5b4a\"}", '"Zm9vYmFyYmF6cXV4"', "'deadbeefcafebabe0123'",
    '"abc"', "'hello world'", '"zz"abcdef"', "it's ok, isn't it", '"python"', "'/usr/bin/env'",
    # people and machines
    "alice@example.com", "a.b-c+d@sub.example.co.uk", "not-an-email@localhost", "192.168.1.254", "255.255.255.255",
    "1.2.3.4.5", "10.0.0.1:8080", "999.1.1.1", "v1.2.3", "2001:db8::1", "fe80::1ff:fe23:4567:890a", "::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "12:34:56", "dead:beef::", "a:b:c:d:e:f:1:2", "std::vector",
    "gpu3.lab.example.de", "example.com", "df.info", "np.int", "huggingface.co", "files.pythonhosted.org",
    "api.github.com", "my-host.corp", "a.b.c.local", "x.y.co.uk", "EXAMPLE.COM", "torch.cuda.is_available()",
    "alice@gpu-node-17:~$ ", "root@ip-10-0-0-5:/# ", "/home/alice/.cache", "/Users/bob/Desktop", "/home/<user>/x",
    f"/home/{USER}/solution", f"/HOME/{USER.upper()}",
    # non-ASCII, including the letters re.IGNORECASE matches to ASCII ones (ſ s, ı İ i, K k)
    "ſecret=abcdefgh", "TO\u212aEN=abcdefgh1234", "Authorization: Basıc dXNlcjpwYXNzd29yZA==", 'paſſword = "ıııııııı"',
    "awſ_key='" + "Ab9/" * 10 + "'", "gpu.lab.ınternal", "ſam", "İlkay", "Quentın", "quentin.f@privatemaıl.example.org",
    "contraseña", "Ünïcödé €", "━━━━━━━━━━ 100% 2.1/2.1 MB", "█▉▊▋▌▍▎▏", "١٩٢.١٦٨.١.١", "１２.３.４.５", "José Müller",
    "josé@exämple.org", "knoten-ß.lab", "Kelvin-\u212a-secret-1", "kelvin-k-SECRET-1", "/home/ſam/data", "/HOME/SAM",
    # terminal control
    '\x1b[31mpass\x1b[0mword="abc12345"', "\x1b]0;alice@gpu-node-17: ~\x07", "\x1b]133;A\x07bench$ ", "\x1b[?2004h",
    "\x1b[2K\r 45%|#########           | 1395/3100 [00:45<00:55]", "\x1b[1;32m>>> \x1b[0mimport torch",
    "\x1b[01;34mdata\x1b[0m  \x1b[01;32mtrain.py\x1b[0m", "\x1bP+q544e\x1b\\", "\r", "\r\n", "\n", "",
]
SEPARATORS = [" ", " ", "\n", "\r\n", "=", ":", "'", '"', "\t", ";", "/", "", "\x1b[0m", "\x1b[1;32m", ",", "@", ".", "`", " = "]
TWINS = {"s": "ſ", "i": "ı", "I": "İ", "k": "\u212a", "K": "\u212a"}


def _mutate(s: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.1:
        return s.upper()
    if r < 0.2:
        return s.lower()
    if r < 0.25:
        return "".join(TWINS.get(c, c) if rng.random() < 0.3 else c for c in s)
    if r < 0.3 and len(s) > 4:  # a secret split by colour codes, as a shell prompt or a highlighter does
        k = rng.randrange(1, len(s))
        return s[:k] + "\x1b[1m" + s[k:]
    return s


def fuzz_cases(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(_mutate(rng.choice(FRAGMENTS), rng))
            parts.append(rng.choice(SEPARATORS))
        out.append("".join(parts))
    return out


def terminal_cases(n: int, seed: int) -> list[str]:
    """Chunks as ``casts.export_cast`` hands them over for a recording like bench/export.py's:
    prompts with typed commands, training-log lines, progress bars, now and then a fragment."""
    rng = random.Random(seed)
    words = ["python", "train.py", "--lr", "3e-4", "nvidia-smi", "ls", "-la", "cat", "solution.py", "git", "diff",
             "score", "vim", "kernel.py", "pytest", "-q", "tail", "-f", "log.txt", "cd", "..", "export", "BATCH=64"]
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.4:
            cmd = " ".join(rng.choice(words) for _ in range(rng.randint(1, 5)))
            out.append(f"\x1b]133;A\x07bench$ {cmd}\r\n")
        elif kind < 0.7:
            lines = [f"step {rng.randint(0, 99999)} loss {rng.random():.4f} lr 3e-4 tokens/s {rng.randint(1000, 90000)}"
                     for _ in range(rng.randint(1, 40))]
            if rng.random() < 0.3:
                lines.insert(rng.randrange(len(lines)), _mutate(rng.choice(FRAGMENTS), rng))
            out.append("\r\n".join(lines) + "\r\n")
        elif kind < 0.9:
            i = rng.randrange(0, 101, 5)
            out.append(f"\r{i:3d}%|{'#' * (i // 5):<20}| {i * 31}/3100 [00:{i:02d}<00:{100 - i:02d}]")
        else:
            out.append(rng.choice(["\r", "\r\n", "exit\r\n", "\x1b[?2004l\r"]))
    return out


def corpus() -> list[str]:
    cases = list(FRAGMENTS)
    cases += [f"{a} {b}" for a, b in zip(FRAGMENTS, FRAGMENTS[1:])]
    cases += fuzz_cases(1500, seed=1)
    cases += terminal_cases(600, seed=2)
    return cases


def scrubbers(cls) -> dict:
    return {name: cls(public_hosts=PUBLIC, **kw) for name, kw in CONFIGS.items()}


def digest(cls) -> str:
    h = hashlib.sha256()
    cases = corpus()
    for name, s in scrubbers(cls).items():
        for text in cases:
            h.update(f"\0{name}\0".encode())
            h.update(s.scrub(text).encode("utf-8", "surrogatepass"))
            h.update(b"\0")
            h.update(s.scrub_terminal(text).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


# sha256 of the corpus as main at ac22ee6 scrubs it, with the string-order tie-break
# (`python -m tests.test_scrub_fast` prints the current one). A changed digest means the corpus
# or what the scrubber replaces changed, not only its speed.
MAIN_DIGEST = "7b3f9cc9d0133f40c2d0b435f3f50574d58bd9f7f8d9d8cc7f1759fdf6adbc2f"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_scrub_and_scrub_terminal_are_byte_identical_to_the_reference(config):
    fast, ref = scrubbers(Scrubber)[config], scrubbers(ReferenceScrubber)[config]
    for text in corpus():
        assert fast.scrub(text) == ref.scrub(text), text
        assert fast.scrub_terminal(text) == ref.scrub_terminal(text), text


def test_scrub_json_is_identical_to_the_reference():
    fast, ref = Scrubber(public_hosts=PUBLIC, **ATTEMPT), ReferenceScrubber(public_hosts=PUBLIC, **ATTEMPT)
    value = {"host": "gpu-node-17.lab.internal", "ms": 12.5, "argv": FRAGMENTS[:40], FRAGMENTS[0]: [None, True, 3]}
    assert fast.scrub_json(value) == ref.scrub_json(value)


def test_no_single_character_is_scrubbed():
    """What lets scrub() return a text of one character at once."""
    ref = ReferenceScrubber(public_hosts=PUBLIC, **ATTEMPT)
    characters = [chr(cp) for cp in range(0x3000) if not 0xD800 <= cp <= 0xDFFF] + ["\u212a", "\uff10"]
    assert [c for c in characters if ref.scrub(c) != c] == []


def test_detector_values_of_equal_length_are_replaced_in_string_order():
    """A Telegram-token match and a GitLab-token match of 46 characters overlap: the one that
    sorts first goes first, whatever the process's hash seed."""
    text = "0123456789:glptt-" + "a" * 40
    assert Scrubber(public_hosts=PUBLIC).scrub(text) == "<secret>" + "a" * 11


def test_the_corpus_scrubs_to_what_main_gave():
    assert digest(ReferenceScrubber) == MAIN_DIGEST
    assert digest(Scrubber) == MAIN_DIGEST


def test_every_hint_holds_wherever_its_pattern_matches_in_the_corpus():
    cases = corpus()
    cases += [c.swapcase() for c in cases[:800]]
    anywhere, upper, _ = _detectors()
    patterns = [(r, lambda s, f, h=h: h(s, f)) for r, h in anywhere] + list(HINTS.items())
    patterns += [(r, lambda s, f, h=h: s != f and h(s, f)) for r, h in upper]
    for config in CONFIGS.values():
        s = Scrubber(public_hosts=PUBLIC, **config)
        patterns += [(pattern, hint) for pattern, _, hint, _ in s._before + s._after]
    for regex, hint in patterns:
        matched = [text for text in cases if regex.search(text)]
        assert matched, f"nothing in the corpus exercises {regex.pattern!r}"
        for text in matched:
            assert hint(text, fold(text)), (regex.pattern, text)


def test_matches_begin_only_where_their_starts_say():
    cases = corpus()
    cases += [c.swapcase() for c in cases[:800]]
    for pattern, starts in STARTS.items():
        matched = 0
        for text in cases:
            begins = [m.start() for m in pattern.finditer(text)]
            matched += bool(begins)
            assert set(begins) <= set(starts(text, fold(text))), (pattern.pattern, text)
        assert matched > 50


def test_every_detect_secrets_detector_has_a_hint():
    """A detect-secrets upgrade that changes a pattern runs it unhinted (slow, still correct):
    this says so, so that its hint gets written."""
    anywhere, upper, _ = _detectors()
    assert [r.pattern for r, hint in anywhere + upper if hint is None] == []


def test_the_keyword_detector_needs_a_quote_and_a_denylist_word():
    """What the keyword detector's hint (anonymize.KEYWORD_DENYLIST and a quote) assumes of
    detect-secrets' keyword plugin."""
    from detect_secrets.plugins import keyword

    assert set(keyword.DENYLIST) == {
        "api_?key", "auth_?key", "service_?key", "account_?key", "db_?key", "database_?key", "priv_?key",
        "private_?key", "client_?key", "db_?pass", "database_?pass", "key_?pass", "password", "passwd", "pwd",
        "secret", "contraseña", "contrasena"}
    assert all(any(w in d.replace("_?", "") for w in anonymize.KEYWORD_DENYLIST) for d in keyword.DENYLIST)
    for regex in keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP:
        assert keyword.DENYLIST_REGEX in regex.pattern or keyword.DENYLIST_REGEX_WITH_PREFIX in regex.pattern
        assert "(" + keyword.QUOTE + ")" in regex.pattern  # a quote, not an optional one


def test_keyword_values_are_what_the_keyword_detector_finds():
    from detect_secrets.plugins.keyword import KeywordDetector

    detector, cases = KeywordDetector(), corpus()
    cases += [c.swapcase() for c in cases[:800]] + ["x" * 50 + FRAGMENTS[i] + "\n" + FRAGMENTS[-i] for i in range(60, 120)]
    found = 0
    for text in cases:
        expected = list(detector.analyze_string(text))
        assert list(prefilter.keyword_values(text, fold(text))) == expected, text
        found += bool(expected)
    assert found > 100


def test_fold_maps_every_case_twin_of_an_ascii_character():
    """re.IGNORECASE matches exactly four non-ASCII characters to ASCII ones; fold() maps each
    to the ASCII letter it matches."""
    ascii_class = re.compile(r"[\x00-\x7f]", re.IGNORECASE)
    twins = {}
    for cp in range(0x80, sys.maxunicode + 1):
        if not 0xD800 <= cp <= 0xDFFF and ascii_class.fullmatch(chr(cp)):
            twins[cp] = {a.lower() for a in map(chr, range(128)) if re.fullmatch(re.escape(a), chr(cp), re.IGNORECASE)}
    assert twins == {cp: {letter} for cp, letter in prefilter.ASCII_TWINS.items()}
    assert all(fold(chr(cp)) == letter for cp, letter in prefilter.ASCII_TWINS.items())


def test_fold_keeps_every_character_one_character_and_whitespace_whitespace():
    """Hints search folded text for a pattern's span of the original: positions and \\s, \\S must
    carry over."""
    every = "".join(chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)
    folded = fold(every)
    assert len(folded) == len(every)
    spaces = re.compile(r"\s")
    assert [m.start() for m in spaces.finditer(folded)] == [m.start() for m in spaces.finditer(every)]


if __name__ == "__main__":
    import django

    sys.argv = sys.argv[:1]
    django.setup()
    print(digest(Scrubber))
