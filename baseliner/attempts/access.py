"""
"May this user touch this attempt?" — the one place that answers it.

Every view, consumer, task and export path that starts from an attempt id goes through
``attempt_for_user``. An attempt the user may not see is indistinguishable from one that
does not exist (404), so ids cannot be probed.

- An expert sees and acts on their own attempts only.
- Staff with ``attempts.view_attempt`` see every attempt; acting on one (``write=True``)
  needs ``attempts.change_attempt``. Staff never act *as* the expert through this helper:
  taking over a terminal is a separate, audited step.
"""
from django.http import Http404

from .models import Attempt


def is_reviewer(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff and user.has_perm("attempts.view_attempt"))


def attempt_for_user(*, user, attempt_id, write: bool = False, queryset=None) -> Attempt:
    """The attempt, if ``user`` may see it (and act on it, with ``write``); else Http404."""
    if user is None or not user.is_authenticated or not user.is_active:
        raise Http404("No such attempt.")
    try:
        attempt_id = int(attempt_id)
    except (TypeError, ValueError):
        raise Http404("No such attempt.") from None
    qs = queryset if queryset is not None else Attempt.objects.select_related("environment", "expert", "assignment")
    attempt = qs.filter(pk=attempt_id).first()
    if attempt is None:
        raise Http404("No such attempt.")
    if attempt.expert_id == user.pk:
        return attempt
    if is_reviewer(user) and (not write or user.has_perm("attempts.change_attempt")):
        return attempt
    raise Http404("No such attempt.")


def is_attempt_expert(*, user, attempt: Attempt) -> bool:
    """Whether ``user`` is the expert doing ``attempt`` (not staff looking at it)."""
    return user.is_authenticated and attempt.expert_id == user.pk


def attempts_visible_to(user):
    """Attempts ``user`` may list: all for reviewers, their own for experts."""
    qs = Attempt.objects.select_related("environment", "expert")
    if is_reviewer(user):
        return qs
    if user.is_authenticated:
        return qs.filter(expert=user)
    return qs.none()
