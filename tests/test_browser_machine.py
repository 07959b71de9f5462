"""Through the real page in Chromium, with the real Celery worker provisioning a local machine."""
import os

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from baseliner.attempts.models import Attempt
from baseliner.attempts.states import State
from baseliner.machines.models import Lease
from baseliner.machines.services import lease_run
from provisioning import base
from tests.conftest import login
from tests.machines_helpers import teardown_all, unix_user_exists

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="per-lease Unix users need root")]

# Record every live event the page receives (across the page's own reloads), to prove the
# progress arrived over the socket.
RECORD_EVENTS = """
document.addEventListener("attempt-event", (e) => {
  const seen = JSON.parse(sessionStorage.getItem("events") || "[]");
  seen.push(e.detail);
  sessionStorage.setItem("events", JSON.stringify(seen));
});
"""


@pytest.fixture
def cleanup(transactional_db):
    """Tears the test's machines down after the page has closed (a test lists it before
    ``page``): a machine torn down under an open workspace makes its file API answer 503,
    which the page would log as console errors. It needs the database until it is done."""
    yield
    base.get_provider.cache_clear()
    teardown_all()


def test_the_expert_starts_the_demo_attempt_watches_progress_and_gets_a_ready_machine(cleanup, page, worker):
    call_command("seed_demo", verbosity=0)
    page.add_init_script(RECORD_EVENTS)
    login(page, "expert", "expert-demo-pass")
    page.get_by_role("row").filter(has_text="Demo").get_by_role("link", name="Open").click()

    start = page.get_by_role("button", name="Start attempt")
    expect(start).to_be_visible()
    page.get_by_label("I have read the instructions, and I accept them").check()  # the demo has no rules
    start.click()

    # Provisioning: a progress bar that fills up live, then the ready machine.
    expect(page.get_by_role("progressbar")).to_be_visible()
    expect(page.get_by_text("Your machine is ready.")).to_be_visible(timeout=60_000)
    events = page.evaluate("JSON.parse(sessionStorage.getItem('events') || '[]')")
    progress = [e["progress"] for e in events if e.get("type") == "provisioning"]
    # Progress arrived live and only moved forward (the page reloads itself once the machine
    # is ready, so the last events may land on the next page).
    assert any(0 < p < 100 for p in progress), events
    assert progress == sorted(progress), events
    expect(page.get_by_role("progressbar")).to_have_count(0)
    expect(page.locator("#attempt-state")).to_have_text("Running")
    expect(page.get_by_role("button", name="Start attempt")).to_have_count(0)

    attempt = Attempt.objects.get(expert__username="expert")
    lease = Lease.objects.get(attempt=attempt)
    assert attempt.state == State.RUNNING and lease.state == Lease.State.READY
    assert lease_run(lease=lease, as_admin=False, command="id -un").stdout.strip() == lease.username
    assert unix_user_exists(lease.username)
