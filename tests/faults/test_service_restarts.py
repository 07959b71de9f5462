"""
PostgreSQL, Redis and the ASGI server die and come back during an attempt: the app recovers
by itself, requests during the outage get the clear "Briefly unavailable" page (never a crash
page), and nothing accepted before the outage is lost.

Every process here is private to the test (see conftest.py): killing it disturbs nobody.
"""
import json
import re
import time

import pytest
import requests
import websockets
from websockets.sync.client import connect

pytestmark = [pytest.mark.slow, pytest.mark.faults]

CRASH_SIGNS = ("Traceback", "Server Error (500)", "OperationalError", "psycopg", "redis.exceptions", "Internal Server Error")


def expert_session(app_server, seed) -> requests.Session:
    s = requests.Session()
    s.cookies.set("sessionid", seed["session"], domain="127.0.0.1", path="/")
    return s


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (requests.ConnectionError, OSError, websockets.exceptions.WebSocketException) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def assert_clear_temporary_error(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:2000])
    assert "Briefly unavailable" in response.text
    assert response.headers.get("Retry-After") == "5"
    for sign in CRASH_SIGNS:
        assert sign not in response.text, f"{sign!r} leaked into the error page"


def csrf_token(session: requests.Session, url: str) -> str:
    session.get(url)
    return session.cookies.get("csrftoken")


def test_postgres_crash_gives_a_clear_503_and_the_app_recovers_by_itself(stack, app_server):
    seed = stack.call("seed_attempt", title="Crash-proof kernels")
    expert = expert_session(app_server, seed)
    page = f"{app_server.url}/attempts/{seed['attempt']}/"
    assert "Crash-proof kernels" in expert.get(page).text
    # Something the app accepted just before the outage (written through the app's own models).
    stack.call("add_note", attempt_id=seed["attempt"], text="accepted before the crash")
    anonymous = requests.Session()
    token = csrf_token(anonymous, f"{app_server.url}/login/")
    server_pid = app_server.proc.pid

    stack.pg.crash()
    try:
        # Pages behind login: the session and user lookups themselves hit the database.
        for url in (page, f"{app_server.url}/", f"{app_server.url}/healthz"):
            assert_clear_temporary_error(expert.get(url, allow_redirects=False))
        # A login attempt during the outage (axes and the user table both need the database).
        r = anonymous.post(f"{app_server.url}/login/", data={"username": seed["expert"], "password": "x", "csrfmiddlewaretoken": token},
                           headers={"Referer": f"{app_server.url}/login/"}, allow_redirects=False)
        assert_clear_temporary_error(r)
    finally:
        stack.pg.start()

    # No restart of the app, no manual step: the next requests simply work again.
    r = wait_until(lambda: (r := expert.get(page)).status_code == 200 and r, what="attempt page back after the database restart")
    assert "Crash-proof kernels" in r.text
    assert app_server.proc.pid == server_pid and app_server.proc.poll() is None
    assert expert.get(f"{app_server.url}/healthz").json() == {"ok": True}
    assert stack.call("note_texts", attempt_id=seed["attempt"]) == ["accepted before the crash"]


def _ws_url(app_server, attempt_id):
    return f"ws://127.0.0.1:{app_server.port}/ws/attempts/{attempt_id}/events/"


def receive_event(app_server, seed, stack, payload) -> dict:
    """Open the attempt's events socket as its expert, push an event, return what arrives."""
    headers = {"Cookie": f"sessionid={seed['session']}", "Origin": app_server.url}
    with connect(_ws_url(app_server, seed["attempt"]), additional_headers=headers, open_timeout=10) as ws:
        stack.call("send_event", attempt_id=seed["attempt"], kind="state", payload=payload)
        return json.loads(ws.recv(timeout=15))


def test_redis_restart_loses_no_page_and_live_events_and_the_worker_recover_by_themselves(stack, app_server, app_worker):
    seed = stack.call("seed_attempt", title="Redis-proof kernels")
    expert = expert_session(app_server, seed)
    page = f"{app_server.url}/attempts/{seed['attempt']}/"
    assert receive_event(app_server, seed, stack, {"label": "before"})["label"] == "before"

    stack.redis.kill()
    # Pages do not need Redis: they keep working; nothing crashes.
    r = expert.get(page)
    assert r.status_code == 200 and "Redis-proof kernels" in r.text
    # The live socket cannot join its group now: the connection is refused, not hung, and the
    # server stays up (the page's socket retries with backoff).
    with pytest.raises((websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed, TimeoutError, OSError)):
        receive_event(app_server, seed, stack, {"label": "during"})
    assert app_server.proc.poll() is None

    stack.redis.start()
    # Live events work again without restarting anything (the first connection may still
    # meet a pooled connection to the old Redis; the page's socket simply retries).
    event = wait_until(lambda: receive_event(app_server, seed, stack, {"label": "after"}),
                       timeout=30, what="live events after the Redis restart")
    assert event == {"type": "state", "label": "after"}
    # The same worker process reconnects to the broker and runs new work.
    worker_pid = app_worker.proc.pid
    stack.call("enqueue_heartbeat")
    wait_until(lambda: stack.call("heartbeat"), timeout=60, interval=1, what="a task run by the reconnected worker")
    assert app_worker.proc.pid == worker_pid and app_worker.proc.poll() is None
    assert expert.get(page).status_code == 200


def test_killed_asgi_server_comes_back_with_the_same_session_and_the_page_reconnects(stack, app_server, browser):
    seed = stack.call("seed_attempt", title="Kill-proof kernels")
    context = browser.new_context(base_url=app_server.url)
    context.add_cookies([{"name": "sessionid", "value": seed["session"], "url": app_server.url}])
    page = context.new_page()
    errors = []
    # While the server is down the browser logs failed socket connections and reloads; anything
    # else is a real error in the page.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "WebSocket" not in m.text else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"/attempts/{seed['attempt']}/")
        from playwright.sync_api import expect

        expect(page.get_by_role("heading", name="Kill-proof kernels")).to_be_visible()
        stack.call("send_event", attempt_id=seed["attempt"], kind="state", payload={"label": "Live before"})
        expect(page.locator("#attempt-state")).to_have_text("Live before")

        app_server.kill()
        time.sleep(1.5)  # the page notices and starts retrying
        app_server.start()

        # The page's socket reconnects by itself (no reload) and receives new events.
        def delivered():
            stack.call("send_event", attempt_id=seed["attempt"], kind="state", payload={"label": "Live after"})
            return page.locator("#attempt-state").text_content() == "Live after"

        wait_until(delivered, timeout=30, interval=1, what="an event on the reconnected page")
        # The session survived the restart: a reload is still logged in.
        page.reload()
        expect(page.get_by_role("heading", name="Kill-proof kernels")).to_be_visible()
        assert not errors, errors
    finally:
        context.close()
