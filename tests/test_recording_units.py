"""The asciicast writer and the shell-integration marker parser, on their own."""
import base64
import resource
import signal

from baseliner.recording.asciicast import AsciicastWriter, read_asciicast
from baseliner.recording.shell import CommandEnd, CommandStart, MarkerParser, Prompt, hooks_script

NONCE = "abcdef0123456789"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_utf8_split_between_reads_is_recorded_whole(tmp_path):
    w = AsciicastWriter(tmp_path / "t.cast", width=80, height=24)
    euro = "€".encode()
    w.output(b"price: " + euro[:1])
    w.output(euro[1:] + b"5\r\n")
    w.input("ü".encode()[:1])
    w.input("ü".encode()[1:])
    w.resize(100, 30)
    w.marker("score: 0.5")
    w.close()
    header, events = read_asciicast(tmp_path / "t.cast")
    assert (header["version"], header["width"], header["height"]) == (2, 80, 24)
    assert "".join(e[2] for e in events if e[1] == "o") == "price: €5\r\n"
    assert [e[1:] for e in events if e[1] != "o"] == [["i", "ü"], ["r", "100x30"], ["m", "score: 0.5"]]


def test_any_output_is_read_back_exactly_one_json_line_per_event(tmp_path):
    # Control characters, quotes, backslashes, escape sequences, and the Unicode line separators
    # (U+2028, U+2029, U+0085: JSON leaves them raw, and str.splitlines() splits at them).
    import json

    tricky = ["\x1b[31mred\x1b[0m", 'say "hi" \\ bye', "\x00\x07\x08\t\n\r\x7f", "\u2028\u2029\x85 é 😀", "\ufffd"]
    w = AsciicastWriter(tmp_path / "t.cast", width=80, height=24)
    for text in tricky:
        w.output(text.encode())
        w.input(text.encode())
    w.marker('score: {"value": 0.5}')
    w.close()
    lines = (tmp_path / "t.cast").read_text(encoding="utf-8").split("\n")[1:-1]  # not splitlines(): U+2028
    events = [json.loads(line) for line in lines]
    assert [e[2] for e in events] == [t for text in tricky for t in (text, text)] + ['score: {"value": 0.5}']
    assert [e[1] for e in events] == ["o", "i"] * len(tricky) + ["m"]
    assert all(isinstance(e[0], float) for e in events)
    assert lines == [json.dumps(e, ensure_ascii=False) for e in events]
    assert read_asciicast(tmp_path / "t.cast")[1] == events


def test_a_full_disk_leaves_a_gap_not_an_error(tmp_path):
    """The file system refuses writes (file size limit reached, as on a full disk): nothing
    raises, the events wait, and the file stays valid and says what was lost."""
    path = tmp_path / "t.cast"
    w = AsciicastWriter(path, width=80, height=24)
    w.output(b"before\r\n")
    assert w.flush() is True
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size, old_limit[1]))
    try:
        w.output(b"while full\r\n")
        assert w.flush() is False
        assert w.gaps == 1
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    w.output(b"after\r\n")
    assert w.flush() is True
    w.close()
    _, events = read_asciicast(path)
    assert "".join(e[2] for e in events if e[1] == "o") == "before\r\nwhile full\r\nafter\r\n"


def test_an_overflowing_buffer_is_marked_as_a_gap(tmp_path, monkeypatch):
    from baseliner.recording import asciicast

    monkeypatch.setattr(asciicast, "MAX_PENDING", 200)
    w = AsciicastWriter(tmp_path / "t.cast", width=80, height=24)
    w.flush()
    for _ in range(20):
        w.output(b"x" * 50)  # more than the buffer holds before the next flush
    w.flush()
    w.close()
    _, events = read_asciicast(tmp_path / "t.cast")
    assert any(e[1] == "m" and e[2].startswith("recording gap:") for e in events)
    assert w.gaps == 1


def test_markers_with_the_nonce_are_parsed_and_removed_even_when_split():
    p = MarkerParser(NONCE)
    stream = (f"out\x1b]133;A;{NONCE}\x07$ \x1b]133;C;{NONCE};100.5;{b64('/home/x')};{b64('ls -l')}\x07"
              f"file\r\n\x1b]133;D;{NONCE};2;101.25\x1b\\").encode()
    out, markers = b"", []
    for i in range(0, len(stream), 3):  # every possible split, three bytes at a time
        o, m = p.feed(stream[i:i + 3])
        out += o
        markers += m
    assert out == b"out$ file\r\n"
    assert markers == [Prompt(), CommandStart(100.5, "/home/x", "ls -l"), CommandEnd(2, 101.25)]


def test_forged_or_broken_markers_pass_through_and_log_nothing():
    p = MarkerParser(NONCE)
    forged = f"\x1b]133;C;wrongnonce;1;{b64('/')};{b64('rm -rf /')}\x07".encode()
    broken = f"\x1b]133;D;{NONCE};notanumber;1\x07".encode()
    other = b"\x1b]0;title\x07\x1b[1mbold"
    out, markers = p.feed(forged + broken + other)
    assert markers == [] and out == forged + broken + other


def test_the_hooks_script_refuses_a_nonce_that_could_break_out():
    import pytest

    with pytest.raises(ValueError):
        hooks_script("abc'; rm -rf ~; '")
    assert NONCE in hooks_script(NONCE)
