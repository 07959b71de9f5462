"""An expert sees only their own attempts; staff see all; ids cannot be probed."""
import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.http import Http404

from baseliner.asgi import application
from baseliner.attempts.access import attempt_for_user
from tests import factories
from tests.async_support import async_test

pytestmark = pytest.mark.django_db


def test_expert_gets_their_own_attempt():
    attempt = factories.attempt()
    assert attempt_for_user(user=attempt.expert, attempt_id=attempt.pk) == attempt


def test_another_expert_gets_404_not_403():
    attempt = factories.attempt()
    intruder = factories.user()
    with pytest.raises(Http404):
        attempt_for_user(user=intruder, attempt_id=attempt.pk)


def test_staff_without_the_permission_cannot_see_attempts():
    attempt = factories.attempt()
    bare_staff = factories.user()
    bare_staff.is_staff = True
    bare_staff.save()
    with pytest.raises(Http404):
        attempt_for_user(user=bare_staff, attempt_id=attempt.pk)


def test_staff_reviewer_sees_any_attempt_and_may_act_with_change_permission():
    attempt = factories.attempt()
    staff = factories.user(staff=True)
    assert attempt_for_user(user=staff, attempt_id=attempt.pk, write=True) == attempt


@pytest.mark.parametrize("bad_id", ["abc", None, "1; DROP TABLE", 10**12])
def test_garbage_ids_are_404(bad_id):
    with pytest.raises(Http404):
        attempt_for_user(user=factories.user(), attempt_id=bad_id)


def test_attempt_page_is_404_for_another_expert_and_shows_nothing(client):
    attempt = factories.attempt()
    intruder = factories.user()
    client.force_login(intruder)
    response = client.get(f"/attempts/{attempt.pk}/")
    assert response.status_code == 404
    assert attempt.environment.title.encode() not in response.content


def test_attempt_page_shows_the_instructions_to_its_expert(client):
    attempt = factories.attempt()
    client.force_login(attempt.expert)
    response = client.get(f"/attempts/{attempt.pk}/")
    assert response.status_code == 200
    assert b"<h1>Do the thing</h1>" in response.content


def test_anonymous_visitor_is_sent_to_login(client):
    attempt = factories.attempt()
    response = client.get(f"/attempts/{attempt.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_home_lists_only_my_attempts(client):
    mine = factories.attempt()
    other = factories.attempt()
    client.force_login(mine.expert)
    body = client.get("/").content.decode()
    assert mine.environment.title in body
    assert other.environment.title not in body


def test_instructions_markdown_cannot_inject_script(client):
    attempt = factories.attempt(instructions="Hi <script>alert(1)</script> <img src=x onerror=alert(2)>")
    client.force_login(attempt.expert)
    body = client.get(f"/attempts/{attempt.pk}/").content.decode()
    assert "<script>alert(1)" not in body
    assert "onerror" not in body


async def _connect(user, attempt_id, origin=b"http://localhost"):
    from channels.db import database_sync_to_async
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    @database_sync_to_async
    def make_session():
        s = SessionStore()
        s[SESSION_KEY] = str(user.pk)
        s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        s[HASH_SESSION_KEY] = user.get_session_auth_hash()
        s.save()
        return s.session_key

    key = await make_session()
    comm = WebsocketCommunicator(
        application, f"/ws/attempts/{attempt_id}/events/",
        headers=[(b"cookie", f"sessionid={key}".encode()), (b"origin", origin), (b"host", b"localhost")],
    )
    connected, code = await comm.connect()
    return comm, connected, code


@pytest.mark.django_db(transaction=True)
@async_test
async def test_events_socket_refuses_another_expert():
    from channels.db import database_sync_to_async

    attempt = await database_sync_to_async(factories.attempt)()
    intruder = await database_sync_to_async(factories.user)()
    comm, connected, code = await _connect(intruder, attempt.pk)
    assert connected is False
    assert code == 4403
    comm, connected, _ = await _connect(attempt.expert, attempt.pk)
    assert connected is True
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@async_test
async def test_events_socket_refuses_a_foreign_origin():
    from channels.db import database_sync_to_async

    attempt = await database_sync_to_async(factories.attempt)()
    comm, connected, _ = await _connect(attempt.expert, attempt.pk, origin=b"http://evil.example")
    assert connected is False
