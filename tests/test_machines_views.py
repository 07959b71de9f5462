"""The Start button and the machine status endpoint: who may press it, and what it says."""
import pytest

from baseliner.attempts.states import State
from baseliner.machines.models import Lease
from tests import factories


@pytest.fixture
def attempt(db):
    return factories.attempt()


def test_start_needs_the_rules_accepted_first(attempt, client):
    client.force_login(attempt.expert)
    response = client.post(f"/attempts/{attempt.pk}/start/", follow=True)
    assert "tick the box to accept them before starting" in response.content.decode()
    attempt.refresh_from_db()
    assert attempt.state == State.ASSIGNED and not Lease.objects.exists()


def test_start_queues_the_attempt_once_even_when_pressed_twice(attempt, client):
    client.force_login(attempt.expert)
    client.post(f"/attempts/{attempt.pk}/start/", {"accept_rules": "on"})
    client.post(f"/attempts/{attempt.pk}/start/", {"accept_rules": "on"})
    attempt.refresh_from_db()
    assert attempt.state == State.QUEUED and attempt.rules_accepted_at is not None and attempt.started_at is None
    assert Lease.objects.filter(attempt=attempt, state=Lease.State.REQUESTED).count() == 1
    status = client.get(f"/attempts/{attempt.pk}/machine/").json()
    assert (status["state"], status["queue_position"], status["ready"]) == ("queued", 1, False)
    page = client.get(f"/attempts/{attempt.pk}/").content.decode()
    assert 'id="machine-progress"' in page


def test_other_experts_get_404_and_staff_cannot_start_someone_elses_attempt(attempt, client):
    client.force_login(factories.user())
    assert client.post(f"/attempts/{attempt.pk}/start/", {"accept_rules": "on"}).status_code == 404
    assert client.get(f"/attempts/{attempt.pk}/machine/").status_code == 404
    staff = factories.user(staff=True)
    client.force_login(staff)
    assert client.get(f"/attempts/{attempt.pk}/machine/").status_code == 200
    response = client.post(f"/attempts/{attempt.pk}/start/", {"accept_rules": "on"}, follow=True)
    assert "Only the expert doing this attempt can start it." in response.content.decode()
    assert not Lease.objects.exists()


def test_start_is_refused_for_anonymous_users_and_get(attempt, client):
    assert client.post(f"/attempts/{attempt.pk}/start/").status_code == 302  # to the login page
    client.force_login(attempt.expert)
    assert client.get(f"/attempts/{attempt.pk}/start/").status_code == 405


def test_insecure_development_mode_is_labelled_on_the_page(attempt, client):
    Lease.objects.create(attempt=attempt, provider="local", state=Lease.State.PROVISIONING, provider_state={"insecure": True})
    client.force_login(attempt.expert)
    assert "Insecure development mode" in client.get(f"/attempts/{attempt.pk}/").content.decode()
    assert client.get(f"/attempts/{attempt.pk}/machine/").json()["insecure"] is True


def test_a_queued_attempt_whose_request_is_cancelled_can_be_started_again(attempt, client):
    from baseliner.machines.services import lease_teardown

    client.force_login(attempt.expert)
    client.post(f"/attempts/{attempt.pk}/start/", {"accept_rules": "on"})
    lease = Lease.objects.get(attempt=attempt)
    assert lease.nonce  # the per-lease secret for shell-integration markers
    lease_teardown(lease=lease, reason="staff cancelled it")
    attempt.refresh_from_db()
    assert (attempt.state, attempt.last_error) == (State.ASSIGNED, "Your machine request was cancelled. Press Start to try again.")
    page = client.get(f"/attempts/{attempt.pk}/").content.decode()
    assert "Start attempt" in page and "Your machine request was cancelled" in page
    client.post(f"/attempts/{attempt.pk}/start/")
    attempt.refresh_from_db()
    assert attempt.state == State.QUEUED and Lease.objects.filter(attempt=attempt, state="requested").count() == 1


def test_a_misconfigured_provider_is_a_clear_error_not_a_stuck_attempt(attempt, client, settings):
    settings.MACHINE_PROVIDER = "no.such.Provider"
    client.force_login(attempt.expert)
    response = client.post(f"/attempts/{attempt.pk}/start/", {"accept_rules": "on"}, follow=True)
    assert "baseliner is misconfigured (unknown machine provider); staff have been told." in response.content.decode()
    attempt.refresh_from_db()
    assert attempt.state == State.ASSIGNED and not Lease.objects.exists()
