"""
How programs on the machine hand a result back: a separator line, then one JSON document.

Both a native scorer and the METR task helper print, as the last thing on stdout::

    ===BASELINER RESULT 7c1e===
    {"score": 0.42, "message": "shown to the expert", "details": {"hidden": "from the expert"}}

Anything printed before the separator (the scorer's own progress, a solution's prints) is
kept as the run's log for staff. Only the text after the *last* separator counts, so output
of the expert's code (which runs in a child process whose stdout the scorer does not pass
through) cannot forge a result.
"""
import json

SEPARATOR = "===BASELINER RESULT 7c1e==="


class ProtocolError(ValueError):
    pass


def parse_result(stdout: str) -> dict:
    """The JSON object after the last separator line; ProtocolError if there is none."""
    head, sep, tail = stdout.rpartition(SEPARATOR + "\n")
    if not sep:
        head, sep, tail = stdout.rpartition(SEPARATOR)
    if not sep:
        raise ProtocolError("the program printed no result")
    try:
        value = json.loads(tail.strip() or "null")
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"the result is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ProtocolError("the result must be a JSON object")
    return value


def log_part(stdout: str) -> str:
    """What the program printed before its result."""
    return stdout.rpartition(SEPARATOR)[0]
