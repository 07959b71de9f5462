"""Invitation links: an expert sets a password, is logged in and finds their assignments."""
from datetime import timedelta

import pytest

from baseliner.accounts.models import Invitation
from baseliner.accounts.services import InvitationError, invitation_accept, invitation_create
from baseliner.attempts import clock
from tests import factories

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "a-long-and-unusual-passphrase"


def test_token_is_not_stored_in_clear():
    invitation, token = invitation_create(email="ada@example.org")
    assert token not in invitation.token_hash
    assert not Invitation.objects.filter(token_hash=token).exists()


def test_accepting_creates_the_account_logs_in_and_assigns(client):
    env = factories.environment(title="Kernel task")
    staff = factories.user(staff=True)
    invitation, token = invitation_create(email="Ada@Example.org", created_by=staff, environments=[env])
    page = client.get(f"/invite/{token}/")
    assert page.status_code == 200
    assert b"ada@example.org" in page.content

    response = client.post(f"/invite/{token}/", {"username": "ada", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/")
    assert b"Kernel task" in home.content
    invitation.refresh_from_db()
    assert invitation.user.username == "ada"
    assert invitation.user.email == "ada@example.org"
    assert invitation.user.check_password(GOOD_PASSWORD)


def test_a_used_link_cannot_be_used_again(client):
    _, token = invitation_create(email="ada@example.org")
    invitation_accept(token=token, username="ada", password=GOOD_PASSWORD)
    response = client.get(f"/invite/{token}/")
    assert response.status_code == 410
    assert b"already been used" in response.content
    with pytest.raises(InvitationError, match="already been used"):
        invitation_accept(token=token, username="ada2", password=GOOD_PASSWORD)


def test_expired_and_unknown_links_are_refused(client):
    invitation, token = invitation_create(email="ada@example.org")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=clock.now() - timedelta(seconds=1))
    assert b"has expired" in client.get(f"/invite/{token}/").content
    assert b"not valid" in client.get("/invite/not-a-token/").content


def test_weak_or_mismatched_passwords_are_refused_and_nothing_is_created(client):
    _, token = invitation_create(email="ada@example.org")
    r = client.post(f"/invite/{token}/", {"username": "ada", "password1": "short", "password2": "short"})
    assert r.status_code == 200
    assert b"too short" in r.content
    r = client.post(f"/invite/{token}/", {"username": "ada", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD + "x"})
    assert b"The two passwords differ." in r.content
    assert not Invitation.objects.get().accepted_at


def test_a_taken_username_is_refused_with_a_clear_error(client):
    factories.user(username="ada")
    _, token = invitation_create(email="ada@example.org")
    r = client.post(f"/invite/{token}/", {"username": "ada", "password1": GOOD_PASSWORD, "password2": GOOD_PASSWORD})
    assert b"That username is taken" in r.content
