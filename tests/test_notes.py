"""The workspace's notes API: the expert adds notes while the attempt runs; another expert
cannot see the attempt; oversized, empty and late notes are refused with a message and nothing
saved; POSTs need the CSRF token; staff read but do not write."""
import json

import pytest
from django.test import Client

from baseliner.attempts.lifecycle import attempt_end
from baseliner.attempts.models import Note
from baseliner.attempts.notes import NOTE_MAX_CHARS
from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import EndReason, State
from tests import factories

pytestmark = pytest.mark.django_db


def running_attempt():
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    return attempt_clock_start(attempt=attempt)


def client_for(user, *, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def url(attempt) -> str:
    return f"/api/attempts/{attempt.pk}/notes/"


def post(client, attempt, text, **extra):
    return client.post(url(attempt), data=json.dumps({"text": text}), content_type="application/json", **extra)


def test_the_expert_adds_notes_and_lists_them_with_their_time():
    attempt = running_attempt()
    client = client_for(attempt.expert)
    response = post(client, attempt, "  baseline: 410 ms\nnext: try a blocked scan  ")
    assert response.status_code == 201, response.content
    note = response.json()["note"]
    assert note["text"] == "baseline: 410 ms\nnext: try a blocked scan"
    assert 0 <= note["elapsed_seconds"] < 60
    assert post(client, attempt, "second").status_code == 201
    listed = client.get(url(attempt)).json()
    assert [n["text"] for n in listed["notes"]] == ["baseline: 410 ms\nnext: try a blocked scan", "second"]
    assert listed["max_chars"] == NOTE_MAX_CHARS
    assert list(Note.objects.filter(attempt=attempt).values_list("author_id", flat=True)) == [attempt.expert_id] * 2


def test_another_expert_gets_404_and_nothing_is_saved():
    attempt = running_attempt()
    other = client_for(factories.user())
    assert other.get(url(attempt)).status_code == 404
    response = post(other, attempt, "not mine")
    assert response.status_code == 404
    assert response.json() == {"error": "No such attempt."}
    assert not Note.objects.exists()
    assert Client().get(url(attempt)).status_code == 401


def test_an_oversized_or_empty_note_is_refused_with_a_message():
    attempt = running_attempt()
    client = client_for(attempt.expert)
    response = post(client, attempt, "x" * (NOTE_MAX_CHARS + 1))
    assert response.status_code == 413
    assert response.json()["error"] == (f"The note is too long ({NOTE_MAX_CHARS + 1} characters; at most {NOTE_MAX_CHARS}). "
                                        "Nothing was saved: split it into several notes.")
    huge = post(client, attempt, "y" * (NOTE_MAX_CHARS * 10))
    assert huge.status_code == 413 and "too long" in huge.json()["error"]
    assert post(client, attempt, "   ").json()["error"] == "The note is empty: write something first."
    assert client.post(url(attempt), data="[1]", content_type="application/json").status_code == 400
    assert not Note.objects.exists()
    assert post(client, attempt, "z" * NOTE_MAX_CHARS).status_code == 201  # exactly at the cap is fine


def test_an_ended_attempt_refuses_new_notes_and_keeps_the_old_ones():
    attempt = running_attempt()
    client = client_for(attempt.expert)
    assert post(client, attempt, "before the end").status_code == 201
    attempt_end(attempt=attempt, reason=EndReason.EXPERT, actor=attempt.expert)
    response = post(client, attempt, "after the end")
    assert response.status_code == 409
    assert response.json()["error"] == "The attempt has ended, so notes can no longer be added. Your earlier notes are kept."
    assert [n["text"] for n in client.get(url(attempt)).json()["notes"]] == ["before the end"]


def test_a_note_before_the_start_is_refused():
    attempt = factories.attempt()
    response = post(client_for(attempt.expert), attempt, "early")
    assert response.status_code == 409
    assert response.json()["error"] == "Notes can be added once the attempt has started."


def test_posting_needs_the_csrf_token():
    attempt = running_attempt()
    client = client_for(attempt.expert, csrf=True)
    assert post(client, attempt, "forged").status_code == 403
    assert not Note.objects.exists()
    client.get(f"/attempts/{attempt.pk}/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert post(client, attempt, "with the token", HTTP_X_CSRFTOKEN=token).status_code == 201


def test_staff_read_the_notes_but_do_not_write_them():
    attempt = running_attempt()
    assert post(client_for(attempt.expert), attempt, "mine").status_code == 201
    staff = client_for(factories.user(staff=True))
    assert [n["text"] for n in staff.get(url(attempt)).json()["notes"]] == ["mine"]
    response = post(staff, attempt, "staff note")
    assert response.status_code == 403
    assert response.json()["error"] == "Only the attempt's expert can add notes to it."
