"""``{% attempt_clock attempt %}``: the countdown, warnings and End / Pause / Resume controls."""
from django import template

from ..access import is_attempt_expert, is_reviewer
from ..lifecycle import attempt_clock_status
from ..states import LIVE_STATES

register = template.Library()


def hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@register.inclusion_tag("attempts/_clock.html", takes_context=True)
def attempt_clock(context, attempt):
    user = context["request"].user
    status = attempt_clock_status(attempt=attempt)
    return {
        "attempt": attempt,
        "status": status,
        "time_left_hms": hms(status["time_left"]),
        "is_expert": is_attempt_expert(user=user, attempt=attempt),
        "is_reviewer": is_reviewer(user),
        "live": attempt.state in LIVE_STATES,
        "csrf_token": context.get("csrf_token"),
    }


register.filter("hms", hms)
