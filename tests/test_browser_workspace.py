"""The workspace in Chromium: terminal (through tmux on a real machine user), editor, conflicts."""
import time

import pytest
from playwright.sync_api import expect

from baseliner.machines.models import Lease
from baseliner.machines.services import MACHINE_NOT_READY
from baseliner.web.events import attempt_event
from tests.conftest import login
from tests.factories import PASSWORD
from tests.workspace_support import *  # noqa: F401,F403

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREEN = """() => {
  const t = window.baseliner && window.baseliner.terminals && window.baseliner.terminals.active;
  if (!t) return "";
  const b = t.term.buffer.active, lines = [];
  for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
  return lines.join("\\n");
}"""


def screen(page) -> str:
    return page.evaluate(SCREEN)


def wait_for_line(page, text: str, timeout: float = 10_000):
    """Wait until a whole line of the active terminal equals ``text``."""
    page.wait_for_function(f"(needle) => ({SCREEN})().split('\\n').some(l => l.trim() === needle)", arg=text, timeout=timeout)


def open_workspace(page, m):
    login(page, m.expert.username, PASSWORD)
    page.goto(f"/attempts/{m.attempt.pk}/")
    expect(page.get_by_role("button", name="New terminal")).to_be_visible()
    page.wait_for_function("() => document.querySelector('.tab[data-state=connected]')")
    page.locator(".term:visible").click()


def type_line(page, text: str):
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def test_echo_hello_and_a_reload_keeps_the_same_shell(page, machine_attempt):
    open_workspace(page, machine_attempt)
    expect(page.get_by_role("button", name="End attempt")).to_be_visible()
    type_line(page, "echo hel''lo")
    wait_for_line(page, "hello")
    type_line(page, "export KEPT=value-$((6*7))")
    page.reload()
    page.wait_for_function("() => document.querySelector('.tab[data-state=connected]')")
    page.locator(".term:visible").click()
    type_line(page, "echo kept:$KEPT")
    wait_for_line(page, "kept:value-42")


def test_yes_then_ctrl_c_gives_a_prompt_back_quickly(page, machine_attempt):
    open_workspace(page, machine_attempt)
    type_line(page, "yes")
    time.sleep(1.5)
    started = time.monotonic()
    page.keyboard.press("Control+C")
    type_line(page, "echo back-$((40+2))")
    wait_for_line(page, "back-42", timeout=5000)
    assert time.monotonic() - started < 2.0, "Ctrl-C took too long to give the prompt back"


def test_edit_save_and_cat_in_the_terminal(page, machine_attempt):
    machine_attempt.run_as_expert("printf 'old line\\n' > hello.txt")
    open_workspace(page, machine_attempt)
    page.get_by_role("treeitem").get_by_role("button", name="hello.txt").click()
    expect(page.get_by_role("status").filter(has_text="Opened hello.txt")).to_be_visible()
    editor = page.get_by_role("textbox", name="File content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("saved from the editor")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved hello.txt")).to_be_visible()
    page.locator(".term:visible").click()
    type_line(page, "cat hello.txt; echo")
    wait_for_line(page, "saved from the editor")


def test_a_conflicting_save_asks_before_overwriting(page, machine_attempt):
    machine_attempt.run_as_expert("printf 'v1\\n' > conf.txt")
    open_workspace(page, machine_attempt)
    page.get_by_role("treeitem").get_by_role("button", name="conf.txt").click()
    expect(page.get_by_role("status").filter(has_text="Opened conf.txt")).to_be_visible()
    machine_attempt.run_as_expert("printf 'v2\\n' > conf.txt")  # changed in the terminal meanwhile
    page.get_by_role("textbox", name="File content").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("mine")
    page.get_by_role("button", name="Save").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("changed on the machine since you opened it")
    assert machine_attempt.run_as_expert("cat conf.txt").stdout == "v2\n"  # nothing written yet
    dialog.get_by_role("button", name="Overwrite").click()
    expect(page.get_by_role("status").filter(has_text="Saved conf.txt")).to_be_visible()
    assert machine_attempt.run_as_expert("cat conf.txt").stdout == "mine"
    # Chromium logs the expected 409 answer as a console error; that one is not a fault.
    page.console_errors[:] = [e for e in page.console_errors if "409 (Conflict)" not in e]


def test_new_terminal_opens_a_second_shell(page, machine_attempt):
    open_workspace(page, machine_attempt)
    page.get_by_role("button", name="New terminal").click()
    expect(page.get_by_role("tab", name="shell-2")).to_have_attribute("aria-selected", "true")
    page.wait_for_function("() => document.querySelectorAll('.tab[data-state=connected]').length === 2")
    page.locator(".term:visible").click()
    type_line(page, "tmux display -p 'in:#S'")
    wait_for_line(page, "in:shell-2")


def test_without_a_ready_machine_the_workspace_waits_then_opens_without_a_reload(page, machine_attempt):
    m = machine_attempt
    Lease.objects.filter(pk=m.lease.pk).update(state=Lease.State.PROVISIONING)  # running, machine not ready
    machine_calls = []
    machine_api = (f"/api/attempts/{m.attempt.pk}/files/", f"/api/attempts/{m.attempt.pk}/terminals/")
    page.on("request", lambda r: machine_calls.append(r.url) if any(p in r.url for p in machine_api) else None)
    page.on("websocket", lambda ws: machine_calls.append(ws.url) if "/terminals/" in ws.url else None)
    login(page, m.expert.username, PASSWORD)
    page.goto(f"/attempts/{m.attempt.pk}/")
    expect(page.locator("#machine-not-ready")).to_have_text(MACHINE_NOT_READY)
    expect(page.locator("#machine-ready")).to_be_hidden()
    expect(page.locator("[data-terminal-status]")).to_have_text("Waiting for your machine…")
    expect(page.get_by_role("button", name="New terminal")).to_be_disabled()
    page.wait_for_load_state("networkidle")
    time.sleep(1.0)  # the events socket is open and the machine status was read again
    assert machine_calls == [], f"the page called the machine's APIs without a machine: {machine_calls}"
    assert page.locator(".tab").count() == 0
    page.evaluate("window.__notReloaded = true")

    # The machine becomes ready; the services push news about it to the page.
    Lease.objects.filter(pk=m.lease.pk).update(state=Lease.State.READY)
    attempt_event(m.attempt.pk, "machine", {"healthy": True, "message": "Your machine is answering again."})
    page.wait_for_function("() => document.querySelector('.tab[data-state=connected]')")
    expect(page.locator("#machine-ready")).to_be_visible()
    expect(page.locator("#machine-not-ready")).to_be_hidden()
    page.locator(".term:visible").click()
    type_line(page, "echo rea''dy")
    wait_for_line(page, "ready")
    expect(page.get_by_role("treeitem").first).to_be_visible()  # the file tree loaded too
    assert page.evaluate("window.__notReloaded") is True


def test_leaving_the_page_with_unsaved_edits_asks_first(page, machine_attempt):
    machine_attempt.run_as_expert("printf 'v1\\n' > draft.txt")
    open_workspace(page, machine_attempt)
    page.get_by_role("treeitem").get_by_role("button", name="draft.txt").click()
    expect(page.get_by_role("status").filter(has_text="Opened draft.txt")).to_be_visible()
    page.get_by_role("textbox", name="File content").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("an hour of work")
    asked = []

    def stay(dialog):
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.evaluate("() => { window.__samePage = 1; setTimeout(() => location.reload(), 0); }")
    deadline = time.monotonic() + 10
    while not asked and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert asked == ["beforeunload"]
    assert page.evaluate("() => window.__samePage") == 1  # the expert chose to stay: nothing lost
    expect(page.get_by_role("textbox", name="File content")).to_contain_text("an hour of work")
    page.keyboard.press("Control+S")
    expect(page.get_by_role("status").filter(has_text="Saved draft.txt")).to_be_visible()
    page.reload()  # saved: no question
    assert asked == ["beforeunload"]
    page.goto("about:blank")  # before the machine goes away under the page's requests


def test_the_keyboard_can_leave_the_terminal_with_f6(page, machine_attempt):
    """Tab goes to the shell (completion), so without a way out the terminal would trap the
    keyboard: F6 moves on to the next control, Shift+F6 back to the previous one."""
    open_workspace(page, machine_attempt)
    in_terminal = "() => !!document.activeElement.closest('.term')"
    assert page.evaluate(in_terminal)
    page.keyboard.press("Tab")
    assert page.evaluate(in_terminal), "Tab is the shell's"
    page.keyboard.press("F6")
    assert not page.evaluate(in_terminal)
    assert page.evaluate("() => document.activeElement.tagName") in ("BUTTON", "A", "INPUT", "SELECT", "TEXTAREA")
    page.locator(".term:visible").click()
    page.keyboard.press("Shift+F6")
    assert not page.evaluate(in_terminal)
    expect(page.get_by_role("button", name="New terminal")).to_be_focused()
    page.goto("about:blank")
