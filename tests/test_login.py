"""Login: works, is rate-limited against brute force, rotates the session, logs out by POST."""
import pytest
from django.conf import settings

from tests import factories

pytestmark = pytest.mark.django_db


def test_login_and_logout(client):
    factories.user(username="ada")
    r = client.post("/login/", {"username": "ada", "password": factories.PASSWORD})
    assert r.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_login_rotates_the_session_key(client):
    factories.user(username="ada")
    client.get("/login/")
    client.session.save()
    before = client.session.session_key
    client.post("/login/", {"username": "ada", "password": factories.PASSWORD})
    assert client.session.session_key != before


def test_repeated_failures_lock_the_account_even_for_the_right_password(client):
    factories.user(username="ada")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "ada", "password": "wrong"})
    r = client.post("/login/", {"username": "ada", "password": factories.PASSWORD})
    assert r.status_code == 429
    assert b"Too many failed logins" in r.content
    assert client.get("/").status_code == 302
