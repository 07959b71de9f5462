"""
Every route, with another expert's ids: 404/403 and none of their data; staff-only routes
refused for experts; the machine API refuses browser sessions.

The routes come from Django's URL resolver and the Channels WebSocket routes at test time,
so a route added later is attacked too. See routes.py for what to add for a new parameter.
"""
import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from tests.security.routes import Route, UnknownParameter, fill, http_routes, websocket_routes

from .conftest import make_victim, snapshot
from tests.async_support import async_test

pytestmark = [pytest.mark.security, pytest.mark.django_db]

METHODS = ("get", "post", "put", "patch", "delete")


def refused(response) -> bool:
    """The request was turned away: not found, forbidden, wrong method, or sent to a login page."""
    if response.status_code in (401, 403, 404, 405, 410):
        return True
    if response.status_code in (301, 302, 303, 307, 308):
        location = response.headers.get("Location", "")
        return location.startswith((settings.LOGIN_URL if settings.LOGIN_URL.startswith("/") else "/login/", "/admin/login/"))
    return False


def stay_logged_in(client, user) -> None:
    """A logout route on the way must not turn the rest of the requests anonymous."""
    if client.session.get("_auth_user_id") != str(user.pk):
        client.force_login(user)


def body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def request(client, method, url):
    return getattr(client, method)(url, **({"content_type": "application/json", "data": "{}"} if method in ("put", "patch") else {}))


def test_every_route_is_known_to_the_inventory(victim):
    """A route with a parameter the inventory cannot fill fails here, with instructions."""
    problems = []
    for route in http_routes() + websocket_routes():
        try:
            fill(route, victim)
        except UnknownParameter as exc:
            problems.append(str(exc))
    assert not problems, "\n\n".join(problems)


def test_an_expert_gets_nothing_of_another_experts_on_any_route(victim, intruder):
    client = Client()
    client.force_login(intruder)
    before = snapshot(victim)
    failures = []
    for route in http_routes():
        url = fill(route, victim)
        for method in METHODS:
            stay_logged_in(client, intruder)
            response = request(client, method, url)
            content = body(response)
            if victim.marker.encode() in content or victim.marker.lower().encode() in content:
                failures.append(f"{method.upper()} {url} ({route.label}) shows the victim's data")
            if route.params and not route.is_public and not refused(response):
                failures.append(f"{method.upper()} {url} ({route.label}) answered {response.status_code} to another expert; expected 404/403")
            if (route.is_staff_only or route.is_machine_api) and not refused(response):
                failures.append(f"{method.upper()} {url} ({route.label}) answered {response.status_code} to an expert; it is staff/machine only")
    assert not failures, "\n".join(failures)
    assert snapshot(victim) == before, "an intruder's request changed the victim's attempt"


def test_staff_only_routes_refuse_the_attempts_own_expert(victim):
    client = Client()
    client.force_login(victim.user)
    failures = []
    for route in http_routes():
        if not (route.is_staff_only or route.is_machine_api):
            continue
        url = fill(route, victim)
        for method in ("get", "post"):
            stay_logged_in(client, victim.user)
            response = request(client, method, url)
            if not refused(response):
                failures.append(f"{method.upper()} {url} ({route.label}) answered {response.status_code} to the expert")
    assert not failures, "\n".join(failures)


def test_anonymous_visitors_get_nothing_but_the_public_pages(victim):
    client = Client()
    failures = []
    for route in http_routes():
        url = fill(route, victim)
        for method in ("get", "post"):
            response = request(client, method, url)
            if victim.marker.encode() in body(response):
                failures.append(f"{method.upper()} {url} shows the victim's data to an anonymous visitor")
            if not route.is_public and not refused(response):
                failures.append(f"{method.upper()} {url} ({route.label}) answered {response.status_code} to an anonymous visitor")
    assert not failures, "\n".join(failures)


def test_staff_without_permissions_are_not_reviewers(victim):
    """is_staff alone (no attempts permissions) sees no attempt."""
    from tests import factories

    bare = factories.user()
    bare.is_staff = True
    bare.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(bare)
    failures = []
    for route in http_routes():
        if route.is_public or route.route.startswith("admin/") or "attempt_id" not in route.params:
            continue
        url = fill(route, victim)
        response = client.get(url)
        if not refused(response) or victim.marker.encode() in body(response):
            failures.append(f"GET {url} answered {response.status_code} to staff without the attempts permissions")
    assert not failures, "\n".join(failures)


# --- WebSockets ---------------------------------------------------------------------------

async def ws_connect(path: str, user=None, origin: bytes | None = b"http://localhost"):
    from baseliner.asgi import application

    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        key = await _session_key(user)
        headers.append((b"cookie", f"sessionid={key}".encode()))
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    received = []
    if connected:
        while not await comm.receive_nothing(timeout=0.3):
            received.append(await comm.receive_output())
        await comm.disconnect()
    return connected, received


@database_sync_to_async
def _session_key(user):
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    s = SessionStore()
    s[SESSION_KEY] = str(user.pk)
    s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    s[HASH_SESSION_KEY] = user.get_session_auth_hash()
    s.create()
    return s.session_key


@pytest.mark.django_db(transaction=True)
@async_test
async def test_every_websocket_route_refuses_intruders_foreign_origins_and_anonymous():
    from tests import factories

    victim = await database_sync_to_async(make_victim)()
    intruder = await database_sync_to_async(lambda: factories.attempt().expert)()
    failures = []
    owner_connected = []
    routes: list[Route] = websocket_routes()
    assert routes, "no WebSocket routes found"
    for route in routes:
        path = fill(route, victim)
        cases = {
            "another expert": dict(user=intruder),
            "the owner from a foreign Origin": dict(user=victim.user, origin=b"http://evil.example"),
            "the owner without an Origin header": dict(user=victim.user, origin=None),
            "an anonymous visitor": dict(user=None),
        }
        if route.is_staff_only:
            cases["the attempt's own expert (staff-only socket)"] = dict(user=victim.user)
        for who, kwargs in cases.items():
            connected, received = await ws_connect(path, **kwargs)
            if connected:
                failures.append(f"{path}: {who} could connect")
            if any(victim.marker in str(m) for m in received):
                failures.append(f"{path}: {who} received the victim's data")
        if not route.is_staff_only and (await ws_connect(path, user=victim.user))[0]:
            owner_connected.append(path)
    assert not failures, "\n".join(failures)
    # The control: refusals above are about who asks, not a socket that refuses everyone (a
    # socket that needs a live machine, like a terminal's, may refuse the owner here too).
    assert "/ws/attempts/{}/events/".format(victim.attempt.pk) in owner_connected
