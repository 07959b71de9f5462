"""
The end-of-attempt survey: which version an attempt answers, validation, drafts, submission,
and staff edits that create a new version.

A question is a dict::

    {"id": "difficulty", "text": "How hard was the task?", "type": "likert",
     "choices": ["Very easy", ..., "Very hard"], "required": true, "help": ""}

types: ``likert`` (answer: 1..len(choices)), ``choice`` (answer: one of ``choices``, e.g.
yes/partly/no), ``number`` (optional ``min``/``max``), ``text`` (at most ``max_length`` or
settings.SURVEY_ANSWER_MAX_CHARS characters).

Submitting is the only way an ended attempt becomes ``surveyed`` (complete), and only with
every required answer valid. A failed submit keeps every answer: the page shows them again
and they are saved as a draft.
"""
from __future__ import annotations

import math

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt
from baseliner.attempts.services import attempt_transition
from baseliner.attempts.states import State

from .models import Survey, SurveyResponse

QUESTION_TYPES = ("likert", "choice", "number", "text")
DEFAULT_NAME = "default"


class SurveyError(Exception):
    """The survey cannot be taken or changed now; ``str()`` is shown to the user."""


class SurveyInvalid(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__(f"{len(errors)} answer(s) need attention")
        self.errors = errors


def _max_chars(question: dict) -> int:
    limit = settings.SURVEY_ANSWER_MAX_CHARS
    return min(int(question.get("max_length") or limit), limit)


# --- definitions ---------------------------------------------------------------------------
def survey_definition_errors(questions) -> list[str]:
    """Problems in a list of question definitions (for the admin form); empty when valid."""
    if not isinstance(questions, list) or not questions:
        return ["The survey needs a list of at least one question."]
    errors, seen = [], set()
    for n, q in enumerate(questions, 1):
        if not isinstance(q, dict):
            errors.append(f"Question {n} must be an object with id, text and type.")
            continue
        qid = q.get("id")
        if not isinstance(qid, str) or not qid.strip() or not qid.replace("_", "").isalnum():
            errors.append(f"Question {n} needs an id made of letters, digits and underscores.")
        elif qid in seen:
            errors.append(f"Question id '{qid}' is used twice.")
        seen.add(qid)
        if not isinstance(q.get("text"), str) or not q["text"].strip():
            errors.append(f"Question {n} ({qid}) needs a text.")
        kind = q.get("type")
        if kind not in QUESTION_TYPES:
            errors.append(f"Question {n} ({qid}) has type {kind!r}; use one of {', '.join(QUESTION_TYPES)}.")
        if kind in ("likert", "choice"):
            choices = q.get("choices")
            if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
                errors.append(f"Question {n} ({qid}) needs at least two choices (a list of texts).")
        if kind == "number":
            for bound in ("min", "max"):
                if bound in q and not isinstance(q[bound], (int, float)):
                    errors.append(f"Question {n} ({qid}): {bound} must be a number.")
        if "required" in q and not isinstance(q["required"], bool):
            errors.append(f"Question {n} ({qid}): required must be true or false.")
    return errors


def survey_active(*, name: str = DEFAULT_NAME) -> Survey | None:
    """The newest active version of survey ``name``. The default survey is created (as the
    data migration does) if it was never there at all."""
    survey = Survey.objects.filter(name=name, is_active=True).order_by("-version").first()
    if survey is None and name == DEFAULT_NAME and not Survey.objects.filter(name=name).exists():
        from .defaults import QUESTIONS, TITLE

        survey, _ = Survey.objects.get_or_create(name=name, version=1, defaults={"title": TITLE, "questions": QUESTIONS})
    return survey


def survey_save_definition(*, survey: Survey, title: str, questions: list, is_active: bool, actor=None) -> tuple[Survey, bool]:
    """Save staff's edit of ``survey``. A version that has answers is never changed: the edit
    becomes a new version (and the old one inactive). Returns (the saved version, whether it
    is new)."""
    from baseliner.audit.services import audit_record

    errors = survey_definition_errors(questions)
    if errors:
        raise SurveyError(" ".join(errors))
    with transaction.atomic():
        new_version = survey.pk is None or SurveyResponse.objects.filter(survey_id=survey.pk).exists()
        if new_version:
            newest = Survey.objects.filter(name=survey.name).aggregate(v=Max("version"))["v"] or 0
            old_pk = survey.pk
            survey = Survey(name=survey.name, version=newest + 1, title=title, questions=questions, is_active=is_active)
            survey.save()
            if old_pk is not None:
                audit_record(action="survey.new_version", actor=actor, target=f"survey:{survey.pk}",
                             data={"from": old_pk, "version": survey.version})
        else:
            survey.title, survey.questions, survey.is_active = title, questions, is_active
            survey.save(update_fields=["title", "questions", "is_active"])
        if survey.is_active:
            Survey.objects.filter(name=survey.name, is_active=True).exclude(pk=survey.pk).update(is_active=False)
    return survey, new_version


# --- answering --------------------------------------------------------------------------------
def survey_for_attempt(*, attempt: Attempt) -> tuple[Survey | None, SurveyResponse | None]:
    """The survey version this attempt answers (its draft's, else the active default) and
    its response so far."""
    response = SurveyResponse.objects.select_related("survey").filter(attempt=attempt).first()
    if response is not None:
        return response.survey, response
    return survey_active(), None


def survey_clean(*, survey: Survey, raw: dict) -> tuple[dict, dict[str, str]]:
    """Validate raw answers (strings, as a form posts them). Returns (clean answers, errors
    by question id). Empty optional answers are left out."""
    answers, errors = {}, {}
    for q in survey.questions:
        qid, kind = q["id"], q["type"]
        value = raw.get(qid)
        value = "" if value is None else str(value).strip()
        if value == "":
            if q.get("required"):
                errors[qid] = "This question needs an answer."
            continue
        if kind == "likert":
            n = len(q["choices"])
            if not value.isdigit() or not 1 <= int(value) <= n:
                errors[qid] = f"Pick one of the {n} options."
            else:
                answers[qid] = int(value)
        elif kind == "choice":
            if value not in q["choices"]:
                errors[qid] = f"Pick one of: {', '.join(q['choices'])}."
            else:
                answers[qid] = value
        elif kind == "number":
            try:
                number = float(value.replace(",", "."))
            except ValueError:
                errors[qid] = "Enter a number (for example 30 or 2.5)."
                continue
            if not math.isfinite(number):
                errors[qid] = "Enter a number (for example 30 or 2.5)."
            elif "min" in q and number < q["min"]:
                errors[qid] = f"Enter a number of at least {q['min']:g}."
            elif "max" in q and number > q["max"]:
                errors[qid] = f"Enter a number of at most {q['max']:g}."
            else:
                answers[qid] = int(number) if number.is_integer() else number
        else:
            limit = _max_chars(q)
            if len(value) > limit:
                errors[qid] = f"This answer is too long ({len(value)} characters; at most {limit}). Please shorten it."
            else:
                answers[qid] = value
    return answers, errors


def _draft_values(survey: Survey, raw: dict) -> dict:
    """What is kept of a draft: every known question's text as typed (capped, so a draft
    cannot be used to store unbounded data)."""
    cap = 2 * settings.SURVEY_ANSWER_MAX_CHARS
    return {q["id"]: str(raw.get(q["id"], ""))[:cap] for q in survey.questions if str(raw.get(q["id"], "")).strip()}


def _check_may_answer(attempt: Attempt, user) -> None:
    if attempt.expert_id != getattr(user, "pk", None):
        raise SurveyError("Only the expert who made this attempt can answer its survey.")
    if attempt.state == State.SURVEYED:
        raise SurveyError("You have already submitted this survey. Thank you!")
    if attempt.state != State.ENDED:
        raise SurveyError("The survey opens when the attempt has ended.")


def survey_response_save_draft(*, attempt: Attempt, user, raw: dict) -> SurveyResponse:
    """Keep the answers so far on the server (nothing is lost if the page closes)."""
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt.pk)
        _check_may_answer(attempt, user)
        survey, response = survey_for_attempt(attempt=attempt)
        if survey is None:
            raise SurveyError("No survey is set up; staff have to create one.")
        values = _draft_values(survey, raw)
        if response is None:
            response = SurveyResponse.objects.create(attempt=attempt, survey=survey, respondent=user, answers={"draft": values})
        else:
            response.answers = {"draft": values}
            response.save(update_fields=["answers", "updated"])
    return response


def survey_response_submit(*, attempt: Attempt, user, raw: dict) -> SurveyResponse:
    """Validate and store the answers against the survey version, and mark the attempt
    complete. Raises SurveyInvalid (the answers are kept as a draft) or SurveyError."""
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt.pk)
        _check_may_answer(attempt, user)
        survey, response = survey_for_attempt(attempt=attempt)
        if survey is None:
            raise SurveyError("No survey is set up; staff have to create one.")
        answers, errors = survey_clean(survey=survey, raw=raw)
    if errors:
        survey_response_save_draft(attempt=attempt, user=user, raw=raw)
        raise SurveyInvalid(errors)
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().get(pk=attempt.pk)
        _check_may_answer(attempt, user)
        now = clock.now()
        response, _ = SurveyResponse.objects.get_or_create(attempt=attempt, defaults={"survey": survey, "respondent": user})
        response.answers, response.submitted_at, response.survey = answers, now, survey
        response.save(update_fields=["answers", "submitted_at", "survey", "updated"])
        attempt_transition(attempt=attempt, to=State.SURVEYED)
    return response


def survey_form_values(*, response: SurveyResponse | None) -> dict:
    """Answers to pre-fill the form with (a draft's as typed, or the submitted ones)."""
    if response is None:
        return {}
    if response.submitted_at is None:
        return dict((response.answers or {}).get("draft") or {})
    return {k: str(v) for k, v in (response.answers or {}).items()}


def survey_questions_by_id(survey) -> dict[str, dict]:
    """A survey's question definitions by id (what review and the export read answers with)."""
    return {q.get("id"): q for q in (survey.questions or []) if isinstance(q, dict)}


def survey_answer_label(question: dict | None, value) -> str | None:
    """The text of a likert answer's option (``2`` -> "Easy"), for people reading answers in
    review and in the export; None for other questions or a value outside the scale."""
    if not isinstance(question, dict) or question.get("type") != "likert":
        return None
    choices = question.get("choices") or []
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= len(choices):
        return None
    return str(choices[value - 1])


def survey_status(attempt: Attempt) -> str:
    """For lists: 'done', 'due', 'draft' or '' (no survey yet)."""
    if attempt.state == State.SURVEYED:
        return "done"
    if attempt.state == State.ENDED:
        try:
            response = attempt.survey_response
        except SurveyResponse.DoesNotExist:
            response = None
        return "draft" if response is not None else "due"
    return ""
