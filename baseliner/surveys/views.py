"""The expert's survey page. Thin: access, one service call, render."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from baseliner.attempts.access import attempt_for_user, is_attempt_expert

from .services import (
    SurveyError,
    SurveyInvalid,
    survey_for_attempt,
    survey_form_values,
    survey_response_save_draft,
    survey_response_submit,
)


def _raw_answers(request, survey) -> dict:
    return {q["id"]: request.POST.get(q["id"], "") for q in survey.questions} if survey else {}


@never_cache
@login_required
def attempt_survey(request, attempt_id: int):
    attempt = attempt_for_user(user=request.user, attempt_id=attempt_id, write=True)
    if not is_attempt_expert(user=request.user, attempt=attempt):
        raise Http404("No such survey.")  # staff read answers in the admin
    survey, response = survey_for_attempt(attempt=attempt)
    values, errors, error = survey_form_values(response=response), {}, None
    if request.method == "POST":
        raw = _raw_answers(request, survey)
        draft = request.POST.get("action") == "draft"
        try:
            if draft:
                survey_response_save_draft(attempt=attempt, user=request.user, raw=raw)
                if "application/json" in request.headers.get("Accept", ""):
                    return JsonResponse({"ok": True, "message": "Draft saved."})
                messages.success(request, "Your answers so far are saved; you can finish later.")
                return redirect("attempt-survey", attempt.pk)
            survey_response_submit(attempt=attempt, user=request.user, raw=raw)
            messages.success(request, "Thank you! Your answers are saved and the attempt is complete.")
            return redirect("home")
        except SurveyInvalid as exc:
            values, errors = raw, exc.errors
            error = "Some answers need attention (marked below). Everything you wrote is kept."
        except SurveyError as exc:
            if "application/json" in request.headers.get("Accept", ""):
                return JsonResponse({"ok": False, "error": str(exc)}, status=409)
            values, error = raw, str(exc)
    questions = [
        {**q, "value": values.get(q["id"], ""), "error": errors.get(q["id"]),
         "options": list(enumerate(q.get("choices") or [], 1))}
        for q in (survey.questions if survey else [])
    ]
    return render(request, "surveys/survey.html", {
        "attempt": attempt, "survey": survey, "questions": questions, "error": error,
        "submitted": response is not None and response.submitted_at is not None,
        "open": attempt.state == "ended",
        # The first question asks whether the score matched: the score that counts is shown
        # above it, where the environment lets experts see scores (as on the home page).
        "show_score": attempt.environment.score_visible_to_expert,
    })
