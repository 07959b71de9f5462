"""Invitations: create a one-time link, accept it to set a password and get the assignments."""
import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from baseliner.attempts import clock
from baseliner.attempts.services import assignment_create
from baseliner.audit.services import audit_record

from .models import Invitation


class InvitationError(Exception):
    """The link cannot be used; ``str()`` says why, in words fit for the person holding it."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(*, email: str, created_by=None, cohort=None, environments=(), valid_days: int | None = None) -> tuple[Invitation, str]:
    """Create an invitation; returns it and the plain token (shown once, never stored)."""
    token = secrets.token_urlsafe(32)
    days = valid_days if valid_days is not None else settings.INVITATION_VALID_DAYS
    with transaction.atomic():
        invitation = Invitation.objects.create(
            email=email.strip().lower(), token_hash=_hash(token), cohort=cohort, created_by=created_by,
            expires_at=clock.now() + timedelta(days=days),
        )
        invitation.environments.set(environments)
        audit_record(action="invitation.create", actor=created_by, target=f"invitation:{invitation.pk}", data={"email": invitation.email})
    return invitation, token


def invitation_lookup(token: str) -> Invitation:
    """The usable invitation for ``token``, or InvitationError saying why not."""
    invitation = Invitation.objects.filter(token_hash=_hash(token or "")).first()
    if invitation is None or invitation.revoked:
        raise InvitationError("This invitation link is not valid. Ask the study team for a new one.")
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation has already been used. Log in with the password you chose.")
    if invitation.expires_at <= clock.now():
        raise InvitationError("This invitation has expired. Ask the study team for a new one.")
    return invitation


def invitation_accept(*, token: str, username: str, password: str):
    """Create the expert's account from the invitation and assign its environments.
    Single use: a second acceptance of the same token fails even if it races the first."""
    User = get_user_model()
    with transaction.atomic():
        invitation = invitation_lookup(token)
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.accepted_at is not None:
            raise InvitationError("This invitation has already been used. Log in with the password you chose.")
        if User.objects.filter(username__iexact=username).exists():
            raise InvitationError("That username is taken; choose another.")
        user = User.objects.create_user(username=username, email=invitation.email, password=password)
        invitation.accepted_at = clock.now()
        invitation.user = user
        invitation.save(update_fields=["accepted_at", "user"])
        for environment in invitation.environments.all():
            assignment_create(expert=user, environment=environment, cohort=invitation.cohort, created_by=invitation.created_by)
        audit_record(action="invitation.accept", actor=user, target=f"invitation:{invitation.pk}")
    return user
