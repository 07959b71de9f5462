"""What an expert sees at common screen sizes: nothing of the workspace's score log is cut off or
pushed behind a sideways scroll in its narrow column."""
import pytest
from playwright.sync_api import expect

from baseliner.attempts.services import attempt_clock_start, attempt_transition
from baseliner.attempts.states import State
from baseliner.scoring.models import ScoreEntry
from baseliner.scoring.services import Outcome, score_record
from tests import factories
from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OVERFLOW = """() => {
  const out = [];
  for (const sel of ['.ws-right', '#score-panel', '#score-table']) {
    const e = document.querySelector(sel);
    if (e.scrollWidth > e.clientWidth + 1) out.push(`${sel} scrolls sideways: ${e.scrollWidth} > ${e.clientWidth}`);
  }
  const panel = document.querySelector('#score-panel').getBoundingClientRect();
  for (const c of document.querySelectorAll('#score-table td:not([hidden]), #score-table th:not([hidden]), #score-status')) {
    const r = c.getBoundingClientRect();
    if (r.width && (r.right > panel.right + 1 || r.left < panel.left - 1)) out.push(`${c.textContent} sticks out`);
  }
  return out;
}"""


@pytest.fixture(autouse=True)
def _no_machine_is_expected(page):
    """No machine here: the workspace's terminal and file requests answer 503, expected."""
    yield
    page.console_errors[:] = [e for e in page.console_errors if "status of 503" not in e]


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_the_workspace_score_log_fits_its_column(page, size):
    attempt = factories.attempt(score_visible_to_expert=True)
    attempt_transition(attempt=attempt, to=State.PROVISIONING)
    attempt = attempt_clock_start(attempt=attempt)
    for raw in (7.3288, 0.5312):
        score_record(attempt=attempt, outcome=Outcome(raw, ScoreEntry.Status.OK,
                                                      f"Correct. count_primes(206001) took {raw * 200:.0f} ms.", {}),
                     trigger="button")
    page.set_viewport_size({"width": size[0], "height": size[1]})
    login(page, attempt.expert.username, factories.PASSWORD)
    page.goto(f"/attempts/{attempt.pk}/")
    table = page.get_by_role("table").filter(has_text="Normalized")
    expect(table.get_by_role("row")).to_have_count(3)  # the header and two entries, still a table
    message = table.get_by_role("cell", name="Correct. count_primes(206001) took 106 ms.")
    expect(message).to_be_visible()
    page.evaluate("document.querySelector('#score-status').textContent = "
                  "'Score #2: OK — Correct. count_primes(206001) took 106 ms.'")
    assert page.evaluate(OVERFLOW) == []

