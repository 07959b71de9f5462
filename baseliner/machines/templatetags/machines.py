"""``{% machine_panel attempt %}``: the Start button, queue place, progress bar and machine
status on the attempt page (kept here so the page template needs one line)."""
from django import template

from baseliner.attempts.access import is_attempt_expert
from baseliner.machines.services import machine_status

register = template.Library()


@register.inclusion_tag("machines/_panel.html", takes_context=True)
def machine_panel(context, attempt):
    request = context["request"]
    return {
        "attempt": attempt,
        "status": machine_status(attempt=attempt),
        "is_expert": is_attempt_expert(user=request.user, attempt=attempt),
        "csrf_token": context.get("csrf_token"),
        "csp_nonce": context.get("csp_nonce"),
    }
