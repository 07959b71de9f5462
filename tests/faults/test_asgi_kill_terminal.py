"""
The ASGI server is SIGKILLed while an expert works in the browser terminal, and restarted:
the open page says it is reconnecting, comes back by itself (no reload) to the same tmux shell,
the terminal's recordings have no hole longer than the outage (what the machine printed
meanwhile reaches the recording through tmux's repaint on reattach), and an editor save and a
score entry made before the kill are still there.

The server here is this test's own (a subprocess on the test database, like the session's),
so killing it disturbs no other test.
"""
import json
import os
import re
import time

import pytest
from playwright.sync_api import expect

from baseliner.recording.models import EditorSave, Recording
from baseliner.review.casts import stitched_cast
from baseliner.scoring.models import ScoreEntry
from baseliner.scoring.services import Outcome, score_record
from tests.conftest import ServerProcess, free_port, login
from tests.factories import PASSWORD
from tests.test_browser_workspace import SCREEN, type_line
from tests.workspace_support import *  # noqa: F401,F403

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.faults,
              pytest.mark.skipif(os.geteuid() != 0, reason="the expert's Unix user needs root")]

# Writing the recording happens once a second (FLUSH_EVERY), so up to a second before a kill
# is lost with the process; the page retries every 1-2 s; the first request of a fresh server
# process is slower. What a reviewer may see beyond the outage itself:
MARGIN_SECONDS = 4.0
TICK = re.compile(r"\b(1\d{18})\b")  # date +%s%N


def wait_for_line(page, text: str, timeout: float = 15_000):
    page.wait_for_function(f"(needle) => ({SCREEN})().split('\\n').some(l => l.trim() === needle)", arg=text, timeout=timeout)


def test_a_killed_asgi_server_leaves_the_terminal_reconnecting_to_the_same_shell_with_no_recording_hole(
        browser, machine_attempt, tmp_path):
    m = machine_attempt
    server = ServerProcess(free_port(), tmp_path / "server.log")
    server.start()
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    # While the server is down the browser logs failed sockets and requests; anything else is a fault.
    expected = ("WebSocket", "ERR_CONNECTION_REFUSED", "Failed to load resource", "Failed to fetch")
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not any(e in msg.text for e in expected) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        m.run_as_expert("printf 'old\\n' > notes.txt")
        login(page, m.expert.username, PASSWORD)
        page.goto(f"/attempts/{m.attempt.pk}/")
        page.wait_for_function("() => document.querySelector('.tab[data-state=connected]')")
        # Before the kill: an editor save, a score entry, a shell variable, output running.
        page.get_by_role("treeitem").get_by_role("button", name="notes.txt").click()
        expect(page.get_by_role("status").filter(has_text="Opened notes.txt")).to_be_visible()
        page.get_by_role("textbox", name="File content").click()
        page.keyboard.press("Control+A")
        page.keyboard.type("saved before the crash")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").filter(has_text="Saved notes.txt")).to_be_visible()
        entry = score_record(attempt=m.attempt, outcome=Outcome(0.25, ScoreEntry.Status.OK, "scored before the crash", {}),
                             trigger="button")
        expect(page.locator("#score-table tbody")).to_contain_text("scored before the crash")
        page.locator(".term:visible").click()
        type_line(page, "export MARK=mark-$((6*7))")
        type_line(page, "(while sleep 0.2; do date +%s%N; done) &")
        time.sleep(1.5)
        window_id = page.evaluate("() => window.__sameWindow = Math.random()")

        killed_at = time.time()
        server.kill()
        # The page says so while the server is away, and keeps the shell's screen.
        expect(page.locator("[data-terminal-status]")).to_contain_text("reconnecting", timeout=5_000)
        expect(page.locator(".tab.active")).to_have_attribute("data-state", "reconnecting")
        time.sleep(8.0)  # a restart under a supervisor takes a few seconds; the machine keeps printing
        # Still saying so after several failed retries, with the last screen kept (not blanked).
        assert "reconnecting" in page.locator("[data-terminal-status]").text_content()
        assert "export MARK=mark-$((6*7))" in page.evaluate(SCREEN)
        server.start()
        back_at = time.time()

        # Back by itself, in the same page (no reload), to the same shell.
        page.wait_for_function("() => document.querySelector('.tab.active[data-state=connected]')", timeout=15_000)
        reconnected_at = time.time()
        assert page.evaluate("() => window.__sameWindow") == window_id, "the page was reloaded"
        expect(page.locator("[data-terminal-status]")).to_have_text("")
        # The page's event socket (scores, clock, warnings) is back as promptly as the terminal,
        # not after a backoff of up to 10 s: a score made now shows up live.
        score_record(attempt=m.attempt, outcome=Outcome(0.5, ScoreEntry.Status.OK, "scored after the restart", {}),
                     trigger="button")
        expect(page.locator("#score-table tbody")).to_contain_text("scored after the restart", timeout=4_000)
        page.locator(".term:visible").click()
        type_line(page, "echo got-$MARK")
        wait_for_line(page, "got-mark-42")
        type_line(page, "kill %1")
        time.sleep(1.5)  # the recording is written once a second

        # The recordings of the terminal, stitched as a reviewer plays them.
        recordings = list(Recording.objects.filter(attempt=m.attempt, terminal="shell-1").order_by("started_at", "pk"))
        assert len(recordings) == 2, recordings  # one before the kill (cut short), one after
        lines = "".join(stitched_cast(recordings)).splitlines()
        events = [json.loads(line) for line in lines[1:]]
        times = [e[0] for e in events]
        assert times == sorted(times)
        outage = back_at - killed_at
        holes = [b - a for a, b in zip(times, times[1:])]
        assert max(holes) <= outage + MARGIN_SECONDS, (max(holes), outage, reconnected_at - back_at)
        # What the machine printed during the outage is in the recording after the reattach
        # (tmux repaints the screen), at the reattach, not before it.
        second = (recordings[1].started_at - recordings[0].started_at).total_seconds()
        repainted = "".join(e[2] for e in events if e[1] == "o" and e[0] >= second)
        ticks = [int(t) / 1e9 for t in TICK.findall(repainted)]
        assert [t for t in ticks if killed_at + 0.5 < t < back_at], (killed_at, back_at, ticks[:5])
        assert "got-mark-42" in repainted

        # Nothing accepted before the kill is lost.
        assert m.run_as_expert("cat notes.txt").stdout == "saved before the crash"
        assert EditorSave.objects.filter(attempt=m.attempt, path="notes.txt").count() == 1
        assert ScoreEntry.objects.filter(attempt=m.attempt).first() == entry
        page.reload()
        expect(page.locator("#score-table tbody")).to_contain_text("scored before the crash")
        assert not errors, errors
    finally:
        context.close()
        server.stop()
