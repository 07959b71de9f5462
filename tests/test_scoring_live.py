"""Scoring end to end with the real server, worker and machine: the Score button updates the
table and chart without a reload, and the machine's `score` / `score_log` commands work from
the expert's own shell."""
from pathlib import Path

import pytest
from playwright.sync_api import expect

from baseliner.catalog.loader import load_folder
from baseliner.catalog.services import environment_upsert
from tests import factories
from tests.conftest import login
from tests.scoring_machine import local_machines, start_machine  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
TEST_ENVS = Path(__file__).resolve().parent / "environments"


def misbehaving_env():
    (spec,) = load_folder(TEST_ENVS / "misbehaving")
    return environment_upsert(spec=spec, source_path="misbehaving")[0]



@pytest.mark.browser
def test_pressing_score_adds_an_entry_and_a_chart_point_without_reloading(page, worker, start_machine):
    attempt = factories.attempt(env=misbehaving_env())
    machine = start_machine(attempt, worker=worker)
    machine.as_expert("echo 'ok 2.5' > mode.txt")
    login(page, attempt.expert.username, factories.PASSWORD)
    page.goto(f"/attempts/{attempt.pk}/")
    panel = page.locator("#score-panel")
    expect(page.locator("#score-empty")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    page.get_by_role("button", name="Score").click()
    row = page.locator("#score-table tbody tr").first
    expect(row).to_contain_text("#1", timeout=30_000)
    expect(row).to_contain_text("0.250")
    expect(row).to_contain_text("scored 2.5")
    expect(row).to_have_class("score-ok counting")
    expect(panel).to_have_attribute("data-chart-points", "1")

    machine.as_expert("echo 'ok 6' > mode.txt")
    page.get_by_role("button", name="Score").click()
    expect(page.locator("#score-table tbody tr")).to_have_count(2, timeout=30_000)
    expect(panel).to_have_attribute("data-chart-points", "2")
    expect(page.locator("#score-table tbody tr.counting")).to_contain_text("#2")

    machine.as_expert("echo crash > mode.txt")
    page.get_by_role("button", name="Score").click()
    expect(page.locator("#score-table tbody tr")).to_have_count(3, timeout=30_000)
    expect(page.locator("#score-table tbody tr").nth(2)).to_contain_text("The scorer crashed")
    expect(panel).to_have_attribute("data-chart-points", "2")  # an error has no point
    assert page.evaluate("window.__notReloaded") is True
    assert "details are for staff" not in page.content()


def test_the_score_command_on_the_machine_scores_and_prints_the_log(live_url, worker, start_machine, settings):
    settings.BASELINER_PUBLIC_URL = live_url
    attempt = factories.attempt(env=misbehaving_env())
    machine = start_machine(attempt, worker=worker)
    machine.as_expert("echo 'ok 4' > mode.txt")
    result = machine.as_expert("bash -lc score", timeout=60)
    assert result.exit_status == 0, result.stdout + result.stderr
    assert "Scoring started." in result.stdout
    assert "#1 OK: normalized 0.4000, raw 4.0000" in result.stdout
    assert attempt.score_entries.get().trigger == "command"
    log = machine.as_expert("bash -lc score_log").stdout
    assert "*1" in log and "scored 4.0" in log and "* counts (best entry)" in log
    # The token in the expert's home is the expert's own, not world-readable.
    assert machine.as_expert("stat -c %a ~/.baseliner/score_token").stdout.strip() == "600"
