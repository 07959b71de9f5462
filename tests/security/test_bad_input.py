"""
Bad input from a browser or a machine, over the real server: a 10 MB form post, invalid
UTF-8, malformed and oversized WebSocket frames. Each gets a clear refusal, and the attempt
stays usable (the next normal request works).

Covered elsewhere: oversized or wrongly typed survey answers (tests/test_survey.py), malicious
environment manifests -- YAML tags, path escapes, symlinks (tests/test_environments.py).
"""
import json
from datetime import timedelta

import pytest
import requests
import websockets
from websockets.sync.client import connect

from baseliner.attempts import clock
from baseliner.attempts.lifecycle import attempt_end
from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import EndReason, State
from tests import factories

pytestmark = [pytest.mark.security, pytest.mark.slow]


def logged_in(live_url, user) -> requests.Session:
    s = requests.Session()
    s.get(f"{live_url}/login/")
    r = s.post(f"{live_url}/login/", data={"username": user.username, "password": factories.PASSWORD,
                                          "csrfmiddlewaretoken": s.cookies["csrftoken"]}, headers={"Referer": f"{live_url}/login/"})
    assert r.status_code == 200 and "sessionid" in s.cookies
    return s


def csrf(s, live_url):
    return {"X-CSRFToken": s.cookies["csrftoken"], "Referer": f"{live_url}/"}


def ended_attempt():
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt_clock_start(attempt=attempt, at=clock.now() - timedelta(minutes=5))
    return attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)


def test_a_10_mb_survey_post_and_invalid_utf8_get_clear_errors_and_lose_nothing(live_url):
    attempt = ended_attempt()
    s = logged_in(live_url, attempt.expert)
    url = f"{live_url}/attempts/{attempt.pk}/survey/"
    # A first draft is kept...
    r = s.post(url, data={"action": "draft", "more_time": "Tune the block size"}, headers={**csrf(s, live_url), "Accept": "application/json"})
    assert r.json() == {"ok": True, "message": "Draft saved."}
    # ...a 10 MB paste is refused as a whole (not truncated, not a crash page)...
    r = s.post(url, data={"action": "draft", "more_time": "x" * (10 << 20)}, headers=csrf(s, live_url))
    assert r.status_code in (400, 413), r.status_code  # (this server runs with DEBUG: its 400 page is technical)
    page = s.get(url)
    assert page.status_code == 200 and "Tune the block size" in page.text, "the draft before it is intact"
    # Bytes that are not UTF-8 are stored as U+FFFD replacement characters, not a crash.
    r = s.post(url, data=b"action=draft&more_time=ok%ff%fe", headers={**csrf(s, live_url), "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code in (200, 302, 400), r.status_code
    page = s.get(url)
    assert page.status_code == 200 and "ok\ufffd\ufffd" in page.text


def test_the_machine_api_refuses_non_json_and_invalid_utf8_clearly(live_url):
    for body in (b"\xff\xfe\x00garbage", b"{not json", b"[1, 2]" * 1000):
        r = requests.post(f"{live_url}/api/machine/score", data=body, headers={"Authorization": "Bearer nope",
                                                                           "Content-Type": "application/json"})
        assert r.status_code == 401 and r.json()["error"].startswith("This machine's score token is not valid")


def test_malformed_and_oversized_websocket_frames_leave_the_socket_usable(live_url):
    attempt = factories.attempt()
    s = logged_in(live_url, attempt.expert)
    ws_url = live_url.replace("http", "ws") + f"/ws/attempts/{attempt.pk}/events/"
    headers = {"Cookie": f"sessionid={s.cookies['sessionid']}", "Origin": live_url}
    frames = ["not json at all", "\x00\x01\x02", json.dumps({"type": "x" * 1000}), b"\xff\xfe binary", "{" * 10000]
    with connect(ws_url, additional_headers=headers, open_timeout=10, max_size=None) as ws:
        for frame in frames:
            ws.send(frame)
            try:
                reply = ws.recv(timeout=5)
            except websockets.exceptions.ConnectionClosed:
                break  # closing a socket that sent garbage is a clear answer too
            assert json.loads(reply)["type"] == "error"
    # A 20 MB frame is over the server's limit: the server closes that socket (1009), nothing else.
    with connect(ws_url, additional_headers=headers, open_timeout=10, max_size=None) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.send("x" * (20 << 20))
            ws.recv(timeout=10)
    # The attempt's socket and page still work.
    with connect(ws_url, additional_headers=headers, open_timeout=10) as ws:
        ws.send("ping")
        assert json.loads(ws.recv(timeout=5))["type"] == "error"
    assert s.get(f"{live_url}/attempts/{attempt.pk}/").status_code == 200


def test_an_oversized_post_gets_a_clear_page_in_production(settings, client, db):
    """With DEBUG off (production), an oversized form gets the plain "Request refused" page."""
    settings.DEBUG = False
    attempt = ended_attempt()
    client.force_login(attempt.expert)
    url = f"/attempts/{attempt.pk}/survey/"
    r = client.post(url, {"action": "draft", "more_time": "y" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    assert r.status_code == 400
    assert b"This request was too large or malformed, so nothing was changed." in r.content
    assert client.get(url).status_code == 200
