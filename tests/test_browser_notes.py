"""The workspace's Notes panel in Chromium: a saved note is listed with its time and is still
there after a reload; an unsaved draft survives the reload too; a note over the cap is refused
with a message and the text stays in the box."""
import re

import pytest
from playwright.sync_api import expect

from baseliner.attempts.models import Note
from baseliner.attempts.notes import NOTE_MAX_CHARS
from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import State
from tests import factories
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def running_attempt():
    attempt = factories.attempt()
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    return attempt_clock_start(attempt=attempt)


def test_a_note_is_saved_listed_and_still_there_after_a_reload(page):
    attempt = running_attempt()
    login(page, attempt.expert.username, factories.PASSWORD)
    page.goto(f"/attempts/{attempt.pk}/")
    notes = page.get_by_role("textbox", name="Notes")
    saved = page.get_by_role("list", name="Saved notes")
    expect(page.get_by_text("No notes yet.")).to_be_visible()

    notes.fill("naive scan: 410 ms\nnext: blocked scan in Triton")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_role("status").filter(has_text="Note saved.")).to_be_visible()
    expect(notes).to_have_value("")
    expect(saved.get_by_role("listitem")).to_have_count(1)
    expect(saved.get_by_role("listitem").first).to_contain_text("next: blocked scan in Triton")
    expect(saved.locator("time").first).to_have_text(re.compile(r"0:0\d:\d\d into the attempt$"))
    assert Note.objects.get(attempt=attempt).text == "naive scan: 410 ms\nnext: blocked scan in Triton"

    notes.fill("a draft I have not saved")  # kept by the browser, not the server
    page.reload()
    expect(saved.get_by_role("listitem")).to_have_count(1)
    expect(saved.get_by_role("listitem").first).to_contain_text("naive scan: 410 ms")
    expect(page.get_by_role("textbox", name="Notes")).to_have_value("a draft I have not saved")
    expect(page.get_by_text("No notes yet.")).to_be_hidden()

    # Ctrl+Enter saves too.
    page.get_by_role("textbox", name="Notes").press("Control+Enter")
    expect(saved.get_by_role("listitem")).to_have_count(2)
    assert Note.objects.filter(attempt=attempt).count() == 2


def test_a_note_over_the_cap_is_refused_and_the_text_is_kept(page):
    attempt = running_attempt()
    login(page, attempt.expert.username, factories.PASSWORD)
    page.goto(f"/attempts/{attempt.pk}/")
    too_long = "x" * (NOTE_MAX_CHARS + 5)
    page.get_by_role("textbox", name="Notes").fill(too_long)
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("[data-notes-status]")).to_have_text(
        f"The note is too long ({NOTE_MAX_CHARS + 5} characters; at most {NOTE_MAX_CHARS}). Nothing was saved: split it into several notes.")
    expect(page.get_by_role("textbox", name="Notes")).to_have_value(too_long)
    assert not Note.objects.exists()
