"""Through Chromium: a staff member plays a recording and jumps to a command from the log."""
import time

import pytest
from playwright.sync_api import expect

from tests import factories
from tests.conftest import login
from tests.review_data import command, finished_attempt, recording, score

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def player_time(page) -> float:
    return page.evaluate("() => window.baselinerReview && window.baselinerReview.player ? window.baselinerReview.player.getCurrentTime() : -1")


def wait_until(page, predicate, timeout=10.0):
    """Poll from Python (the page's CSP forbids the eval that wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = player_time(page)
        if predicate(value):
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"player time {player_time(page)} never satisfied the condition")


def test_staff_plays_the_recording_and_a_click_in_the_command_log_seeks_the_player(page):
    attempt = finished_attempt()
    events = [[round(0.5 * i, 3), "o", f"line {i}\r\n"] for i in range(1, 81)]  # 40 s of output, no idle gap
    recording(attempt, events)
    command(attempt, 3, "echo one")
    command(attempt, 25, "python train.py --epochs 3")
    score(attempt, 30, 0.5)
    staff = factories.user(staff=True)
    login(page, staff.username, factories.PASSWORD)
    page.goto(f"/review/attempts/{attempt.pk}/")
    expect(page.get_by_role("heading", name="Terminal recordings")).to_be_visible()
    player = page.locator("#player .ap-player")
    expect(player).to_be_visible()
    page.locator("#player .ap-overlay-start, #player .ap-playback-button").first.click()
    wait_until(page, lambda t: t > 0.3)
    page.get_by_role("row").filter(has_text="python train.py --epochs 3").click()
    t = wait_until(page, lambda t: abs(t - 25) < 2)
    assert 24.5 <= t <= 27, t
    expect(page.locator("#player")).to_contain_text("line 48")  # the screen as it was at 25 s
    # The marker list jumps too.
    page.get_by_role("button", name="Score #1: 0.500").click()
    wait_until(page, lambda t: abs(t - 30) < 2)
    # The search narrows the command log.
    page.get_by_label("Search the command log").fill("echo")
    expect(page.locator("#command-log tr.command:visible")).to_have_count(1)


def test_expert_cannot_open_the_review_page(page):
    attempt = finished_attempt()
    login(page, attempt.expert.username, factories.PASSWORD)
    response = page.goto(f"/review/attempts/{attempt.pk}/")
    assert response.status == 404
    page.console_errors.clear()  # the 404 itself logs a resource error


def test_monitor_updates_live_and_sorts(page):
    from tests.review_data import running_attempt

    staff = factories.user(staff=True)
    first = running_attempt()
    login(page, staff.username, factories.PASSWORD)
    page.goto("/review/")
    table = page.locator("#monitor")
    expect(table.locator("tbody tr")).to_have_count(1)
    second = running_attempt()
    score(second, 60, 0.9)
    expect(table.locator("tbody tr")).to_have_count(2, timeout=10_000)  # without a reload
    rows = table.locator("tbody tr")
    expect(rows.nth(1)).to_contain_text("0.900")
    table.get_by_role("columnheader", name="Attempt").click()  # sorted by id already: now descending
    expect(rows.first).to_have_attribute("data-attempt", str(second.pk))
    table.get_by_role("columnheader", name="Best score").click()
    expect(rows.first).to_have_attribute("data-attempt", str(second.pk))  # attempts without a score go last
    table.get_by_role("columnheader", name="Attempt").click()
    expect(rows.first).to_have_attribute("data-attempt", str(first.pk))
    table.get_by_role("link", name=f"#{second.pk}").click()
    expect(page.get_by_role("heading", name=f"Attempt {second.pk}:")).to_be_visible()


def test_the_monitor_sorts_from_the_keyboard_and_says_how_it_is_sorted(page):
    from tests.review_data import running_attempt

    staff = factories.user(staff=True)
    first, second = running_attempt(), running_attempt()
    score(second, 60, 0.9)
    login(page, staff.username, factories.PASSWORD)
    page.goto("/review/")
    table = page.locator("#monitor")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(table.get_by_role("columnheader", name="Attempt")).to_have_attribute("aria-sort", "ascending")
    table.get_by_role("button", name="Best score").focus()
    page.keyboard.press("Enter")
    expect(table.get_by_role("columnheader", name="Best score")).to_have_attribute("aria-sort", "ascending")
    expect(table.get_by_role("columnheader", name="Attempt")).to_have_attribute("aria-sort", "none")
    expect(rows.first).to_have_attribute("data-attempt", str(second.pk))
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")
    expect(table.get_by_role("columnheader", name="Best score")).to_have_attribute("aria-sort", "descending")


def test_export_page_shows_progress_until_the_bundle_is_ready(page, worker):
    staff = factories.user(staff=True)
    attempt = finished_attempt()
    command(attempt, 5, "ls")
    login(page, staff.username, factories.PASSWORD)
    page.goto("/review/exports/")
    page.get_by_role("button", name="Build export").click()
    row = page.locator("#exports tr[data-job]").first
    expect(row.get_by_role("link", name="Download")).to_be_visible(timeout=30_000)
    expect(row.locator("progress")).to_have_attribute("value", "100")


def test_seeking_maps_the_moment_through_the_idle_time_limit(page):
    """A 90 s idle gap is played as 2 s (the default idle-time limit): a command at 105 s into
    the recording is at 17 s of the player, and the screen shows what was there at 105 s."""
    attempt = finished_attempt()
    events = [[round(0.5 * i, 3), "o", f"early {i}\r\n"] for i in range(1, 21)]
    events += [[round(100 + 0.5 * i, 3), "o", f"late {i}\r\n"] for i in range(0, 21)]
    recording(attempt, events)
    command(attempt, 105, "make bench")
    staff = factories.user(staff=True)
    login(page, staff.username, factories.PASSWORD)
    page.goto(f"/review/attempts/{attempt.pk}/")
    expect(page.locator("#player .ap-player")).to_be_visible()
    page.get_by_role("row").filter(has_text="make bench").click()
    t = wait_until(page, lambda t: abs(t - 17) < 0.5)
    assert 16.5 < t < 17.5
    expect(page.locator("#player")).to_contain_text("late 10")
    page.get_by_label("Idle time limit").select_option("")  # no limit: the player's time is the recording's
    page.get_by_role("row").filter(has_text="make bench").click()
    wait_until(page, lambda t: abs(t - 105) < 0.5)
