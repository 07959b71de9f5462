"""Through the real page in Chromium: log in as the demo expert and admin."""
import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_demo_expert_logs_in_and_sees_the_demo_assignment(page):
    call_command("seed_demo", verbosity=0)
    login(page, "expert", "expert-demo-pass")
    expect(page.get_by_role("heading", name="Your attempts")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Demo")
    expect(row).to_have_count(1)
    row.get_by_role("link", name="Open").click()
    expect(page.get_by_role("heading", name="Instructions")).to_be_visible()


def test_wrong_password_shows_an_error(page):
    call_command("seed_demo", verbosity=0)
    login(page, "expert", "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Your username and password didn't match")


def test_demo_admin_reaches_the_admin(page):
    call_command("seed_demo", verbosity=0)
    login(page, "admin", "admin-demo-pass")
    page.get_by_role("link", name="Admin", exact=True).click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.locator("#content-main").get_by_role("row", name="Attempts").get_by_role("link", name="Attempts", exact=True).click()
    expect(page.get_by_role("heading", name="Select attempt to change")).to_be_visible()
    expect(page.locator("#result_list").get_by_text("expert", exact=True)).to_have_count(1)
