"""Scoring time that does not count against the clock (``scoring.counts_against_clock: false``):
a real scoring run on a real machine moves the deadline by the measured scoring time (the
machine's guard is told, a clock event records it, later entries' elapsed time leaves it out);
errors and timeouts give their time back too; with the default (true) nothing moves; and the
open page's countdown follows without a reload."""
import re
import shutil
import time
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import expect

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt, ClockEvent
from baseliner.catalog.loader import load_folder
from baseliner.catalog.services import environment_upsert
from baseliner.scoring.models import ScoreEntry
from baseliner.scoring.services import score_request, score_run_process
from tests import factories
from tests.conftest import login
from tests.scoring_machine import local_machines, start_machine  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
TEST_ENVS = Path(__file__).resolve().parent / "environments"
TOLERANCE = 0.05  # seconds: the deadline moves by the entry's own measured time


def misbehaving_env(tmp_path, *, counts_against_clock: bool):
    """The misbehaving test environment, loaded through the manifest with the setting given."""
    if counts_against_clock:
        (spec,) = load_folder(TEST_ENVS / "misbehaving")
        return environment_upsert(spec=spec, source_path="misbehaving")[0]
    folder = tmp_path / "misbehaving-untimed"
    shutil.copytree(TEST_ENVS / "misbehaving", folder)
    manifest = folder / "environment.yaml"
    text = manifest.read_text().replace("id: misbehaving", "id: misbehaving-untimed")
    manifest.write_text(text + "  counts_against_clock: false\n")
    (spec,) = load_folder(folder)
    env = environment_upsert(spec=spec, source_path=str(folder))[0]
    assert env.scoring_counts_against_clock is False
    return env


def score(attempt) -> ScoreEntry:
    run, _ = score_request(attempt=attempt, trigger=ScoreEntry.Trigger.BUTTON, user=attempt.expert)
    return score_run_process(run_id=run.pk)


def guard_deadline(machine) -> int:
    return int((machine.machine_dir / "clock" / "deadline").read_text().strip())


@pytest.mark.django_db
def test_scoring_time_is_given_back_when_it_does_not_count(start_machine, tmp_path):
    attempt = factories.attempt(env=misbehaving_env(tmp_path, counts_against_clock=False))
    machine = start_machine(attempt)
    attempt.refresh_from_db()
    before = attempt.deadline_at
    assert guard_deadline(machine) == clock.epoch(before)

    assert machine.as_expert("echo 'slow 2' > mode.txt").ok
    first = score(attempt)
    assert first.status == "ok", first.message
    assert first.scoring_seconds >= 2
    attempt.refresh_from_db()
    moved = (attempt.deadline_at - before).total_seconds()
    assert abs(moved - first.scoring_seconds) < TOLERANCE, (moved, first.scoring_seconds)
    assert attempt.scoring_returned_seconds == pytest.approx(first.scoring_seconds)
    # The machine's own guard holds the new deadline, and the clock event records the change.
    assert attempt.machine_deadline_at == attempt.deadline_at
    assert guard_deadline(machine) == clock.epoch(attempt.deadline_at)
    (event,) = ClockEvent.objects.filter(attempt=attempt, kind=ClockEvent.Kind.SCORING)
    assert event.seconds == pytest.approx(first.scoring_seconds)
    assert "Scoring run #1 took" in event.reason
    # Staff see it in the review page's clock events and timeline.
    staff = Client()
    staff.force_login(factories.user(staff=True))
    review = staff.get(f"/review/attempts/{attempt.pk}/").content.decode()
    assert "Scoring time given back" in review and "Scoring run #1 took" in review
    # The clock agrees with itself: time left is the new deadline minus now, and a later entry's
    # elapsed time leaves out the time given back.
    now = clock.now()
    assert abs(clock.time_left(attempt, at=now) - (attempt.deadline_at - now).total_seconds()) < 0.01
    second = score(attempt)
    wall = (second.requested_at - attempt.started_at).total_seconds()
    assert second.elapsed_seconds == pytest.approx(wall - first.scoring_seconds, abs=0.01)


@pytest.mark.django_db
def test_a_scoring_error_or_timeout_gives_its_time_back_too(start_machine, tmp_path):
    attempt = factories.attempt(env=misbehaving_env(tmp_path, counts_against_clock=False))
    machine = start_machine(attempt)
    attempt.refresh_from_db()
    before = attempt.deadline_at

    assert machine.as_expert("echo hang > mode.txt").ok
    hung = score(attempt)
    assert hung.status == "error" and "did not finish within its 4 s limit" in hung.message
    assert hung.scoring_seconds >= 4
    assert machine.as_expert("echo crash > mode.txt").ok
    crashed = score(attempt)
    assert crashed.status == "error"
    attempt.refresh_from_db()
    moved = (attempt.deadline_at - before).total_seconds()
    assert abs(moved - (hung.scoring_seconds + crashed.scoring_seconds)) < TOLERANCE
    assert ClockEvent.objects.filter(attempt=attempt, kind=ClockEvent.Kind.SCORING).count() == 2


@pytest.mark.django_db
def test_scoring_time_counts_by_default(start_machine, tmp_path):
    attempt = factories.attempt(env=misbehaving_env(tmp_path, counts_against_clock=True))
    machine = start_machine(attempt)
    attempt.refresh_from_db()
    before = attempt.deadline_at
    assert machine.as_expert("echo 'slow 1' > mode.txt").ok
    entry = score(attempt)
    assert entry.status == "ok" and entry.scoring_seconds >= 1
    attempt.refresh_from_db()
    assert attempt.deadline_at == before
    assert attempt.scoring_returned_seconds == 0
    assert not ClockEvent.objects.filter(attempt=attempt, kind=ClockEvent.Kind.SCORING).exists()


def shown_seconds(page) -> int:
    text = page.locator("[data-countdown]").inner_text()
    h, m, s = (int(x) for x in re.fullmatch(r"(\d+):(\d\d):(\d\d)", text).groups())
    return h * 3600 + m * 60 + s


@pytest.mark.browser
def test_the_open_page_countdown_gets_the_time_back_without_a_reload(page, worker, start_machine, tmp_path):
    attempt = factories.attempt(env=misbehaving_env(tmp_path, counts_against_clock=False))
    machine = start_machine(attempt, worker=worker)
    assert machine.as_expert("echo 'slow 3' > mode.txt").ok
    login(page, attempt.expert.username, factories.PASSWORD)
    page.goto(f"/attempts/{attempt.pk}/")
    expect(page.locator("#score-clock-note")).to_contain_text("Scoring does not count against your clock")
    expect(page.locator("[data-countdown]")).to_have_text(re.compile(r"^0:5\d:\d\d$"))
    page.evaluate("window.__notReloaded = true")
    page.get_by_role("button", name="Score").click()
    expect(page.locator("#score-table tbody tr").first).to_contain_text("scored 3.0 slowly", timeout=30_000)
    entry = ScoreEntry.objects.get(attempt=attempt)
    assert entry.scoring_seconds >= 3
    for _ in range(50):  # the time is given back just after the entry is recorded
        attempt = Attempt.objects.get(pk=attempt.pk)
        if attempt.scoring_returned_seconds:
            break
        time.sleep(0.1)
    assert attempt.scoring_returned_seconds == pytest.approx(entry.scoring_seconds)
    # The countdown shows the server's time left (3+ s more than without the given-back time),
    # from the "clock" event: the page's own periodic sync is a minute away.
    time.sleep(0.5)
    for _ in range(3):
        shown = shown_seconds(page)
        server = clock.time_left(Attempt.objects.get(pk=attempt.pk))
        assert abs(shown - server) <= 1.0, f"page shows {shown}s, server has {server:.2f}s left"
        time.sleep(0.5)
    assert page.evaluate("window.__notReloaded") is True
