"""Pages. Thin: check access, call a service or a selector, render."""
import markdown
import nh3
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache

from baseliner.attempts import clock
from baseliner.attempts.access import attempt_for_user, attempts_visible_to, is_attempt_expert, is_reviewer
from baseliner.attempts.states import State
from baseliner.surveys.services import survey_status
from baseliner.workspace.views import workspace_context


def render_markdown(text: str) -> str:
    """Markdown to HTML with everything but plain formatting stripped (instructions come
    from environment folders, which staff control but should not be able to script)."""
    return nh3.clean(markdown.markdown(text or "", extensions=["fenced_code", "tables"]))


@login_required
def home(request):
    attempts = attempts_visible_to(request.user).filter(expert=request.user).select_related("survey_response")
    rows = [
        {
            "attempt": a,
            "time_used": clock.time_used(a),
            "show_score": a.environment.score_visible_to_expert,
            "survey": survey_status(a),
        }
        for a in attempts
    ]
    return render(request, "web/home.html", {"rows": rows, "is_reviewer": is_reviewer(request.user)})


@never_cache
@login_required
def attempt_detail(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id)
    if attempt.state == State.ENDED and is_attempt_expert(user=request.user, attempt=attempt):
        # After the end the expert answers the survey; the attempt is complete only then.
        return redirect("attempt-survey", attempt.pk)
    return render(
        request,
        "web/attempt.html",
        {
            "attempt": attempt,
            "instructions_html": render_markdown(attempt.environment.instructions),
            "rules_html": render_markdown(attempt.environment.rules),
            "time_left": clock.time_left(attempt),
            "deadline": clock.deadline(attempt),
            "workspace": workspace_context(user=request.user, attempt=attempt),
        },
    )


def healthz(request):
    """Liveness for load balancers: the app answers and reaches its database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def favicon(request):
    return redirect(static("favicon.svg"), permanent=True)
