"""
Machines for attempts: every write on a Lease, and the machine contract the rest of baseliner
codes against.

The contract (terminal, editor, scoring, clock and cloud code use exactly these)::

    lease_for_attempt(attempt=)              -> the attempt's live Lease, or None
    lease_client(lease=, as_admin=False)     -> connected paramiko client, host key pinned (caller closes)
    lease_run(lease=, command=, as_admin=True, timeout=60, stdin=None, max_output=1<<20) -> ssh.RunResult
    attempt_request_start(attempt=, user=)   -> the Start button: queue, provision, clock starts when ready
    lease_teardown(lease=, reason=)          -> idempotent; kills processes, removes users/files, frees the GPU

A lease moves ``requested`` (waiting in the queue) -> ``provisioning`` (capacity reserved, the
Celery task is making the machine) -> ``ready`` (<-> ``unhealthy``) -> ``tearing_down`` ->
``torn_down``; a failed provisioning ends in ``failed`` after its half-made machine is torn
down. Only ``ready``/``unhealthy`` leases can be connected to. The attempt's clock starts
(``attempt_clock_start``) in the same transaction that marks the lease ready, never before.
"""
from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt
from baseliner.attempts.services import AttemptActionError, attempt_clock_start, attempt_transition
from baseliner.attempts.states import State
from baseliner.audit.services import audit_record
from baseliner.catalog.services import environment_latest
from baseliner.web.events import attempt_event
from provisioning import ssh
from provisioning.base import CapacityUnavailable, ProvisionError, get_provider, user_message_for
from provisioning.prepare import prepare_machine

from .models import Lease

log = logging.getLogger(__name__)

LIVE = Lease.LIVE_STATES
# Attempt states in which holding a machine makes sense; a live lease of any other attempt
# is an orphan for the reaper.
ATTEMPT_NEEDS_MACHINE = (State.QUEUED, State.PROVISIONING, State.RUNNING, State.PAUSED)
# The fields a provider writes while provisioning (saved after every progress event).
PROVIDER_FIELDS = ["address", "port", "username", "host_key", "host_key_fingerprint", "credentials_encrypted",
                   "provider_state", "gpu_info", "host", "gpu_index", "cost_per_hour", "progress", "progress_message"]


# What the expert sees while their attempt runs without a ready machine (the machine panel,
# and the workspace API's 503 answer): the workspace opens the terminals and files by itself
# once the machine is ready.
MACHINE_NOT_READY = ("Your machine is not ready, so your terminals and files are not available yet. They open here "
                     "by themselves as soon as it is; you do not need to reload.")


# --- reading ---------------------------------------------------------------------------
def lease_for_attempt(*, attempt) -> Lease | None:
    """The attempt's live lease (any of requested ... tearing_down), newest first."""
    return Lease.objects.filter(attempt_id=attempt.pk, state__in=LIVE).order_by("-created", "-pk").first()


def lease_client(*, lease: Lease, as_admin: bool = False):
    """A connected paramiko client to the lease's machine, as the expert (default) or as the
    admin (root) user. The host key is verified against the pinned one on every connection
    (HostKeyMismatch otherwise). The caller closes it."""
    return get_provider(lease.provider).client(lease=lease, as_admin=as_admin)


def lease_run(*, lease: Lease, command: str, as_admin: bool = True, timeout: float = 60, stdin=None,
              max_output: int = 1 << 20) -> ssh.RunResult:
    """Run one command on the lease's machine (as root by default) over a fresh connection."""
    client = lease_client(lease=lease, as_admin=as_admin)
    try:
        return ssh.run(client, command, timeout=timeout, stdin=stdin, max_output=max_output)
    finally:
        client.close()


def lease_queue_position(*, lease: Lease) -> int | None:
    """1-based place of a waiting lease in its provider's queue; None once it has a machine."""
    if lease.state != Lease.State.REQUESTED:
        return None
    ahead = Lease.objects.filter(state=Lease.State.REQUESTED, provider=lease.provider, created__lt=lease.created).count()
    same_instant = Lease.objects.filter(state=Lease.State.REQUESTED, provider=lease.provider, created=lease.created,
                                        pk__lt=lease.pk).count()
    return ahead + same_instant + 1


def machine_status(*, attempt: Attempt) -> dict:
    """What the attempt page shows about the machine. Never any key or address."""
    lease = Lease.objects.filter(attempt_id=attempt.pk).order_by("-created", "-pk").first()
    status = {
        "state": attempt.state,
        "label": attempt.get_state_display(),
        "progress": 0,
        "message": "",
        "queue_position": None,
        "ready": False,
        "healthy": True,
        "insecure": False,
        "error": attempt.last_error if attempt.state == State.PROVISION_FAILED else "",
        "not_ready_message": MACHINE_NOT_READY,
    }
    if lease is not None and lease.state in LIVE:
        status.update(
            progress=lease.progress,
            message=lease.progress_message,
            queue_position=lease_queue_position(lease=lease),
            ready=lease.state in (Lease.State.READY, Lease.State.UNHEALTHY) and attempt.state in (State.RUNNING, State.PAUSED),
            healthy=lease.state != Lease.State.UNHEALTHY,
            insecure=bool(lease.provider_state.get("insecure")),
        )
    return status


# --- writing ---------------------------------------------------------------------------
def _set_state(lease: Lease, state: str, **fields) -> Lease:
    lease.state = state
    lease.state_changed_at = clock.now()
    for name, value in fields.items():
        setattr(lease, name, value)
    lease.save(update_fields=["state", "state_changed_at", *fields])
    return lease


def _locked(lease_id: int) -> Lease:
    return Lease.objects.select_for_update().get(pk=lease_id)


def _push_state(attempt: Attempt, **extra) -> None:
    attempt_event(attempt.pk, "state", {"state": attempt.state, "label": attempt.get_state_display(), **extra})


def _enqueue_provision(lease_id: int) -> None:
    from .tasks import lease_provision_task

    transaction.on_commit(lambda: lease_provision_task.delay(lease_id))


def attempt_request_start(*, attempt: Attempt, user) -> Attempt:
    """The expert pressed Start: ask for a machine. The attempt waits in ``queued`` until the
    provisioning task has one, then ``provisioning``; the clock starts when it is ready.
    Idempotent: pressing Start again while that happens changes nothing. From
    ``provision_failed`` this is the Retry."""
    with transaction.atomic():
        attempt = Attempt.objects.select_for_update().select_related("environment").get(pk=attempt.pk)
        if attempt.expert_id != getattr(user, "pk", None):
            raise AttemptActionError("Only the expert doing this attempt can start it.")
        if attempt.state in ATTEMPT_NEEDS_MACHINE:
            return attempt
        if attempt.state not in (State.ASSIGNED, State.PROVISION_FAILED):
            raise AttemptActionError("This attempt has ended; it cannot be started again.")
        if attempt.rules_accepted_at is None:
            raise AttemptActionError("Please read and accept the rules before starting.")
        try:
            get_provider(settings.MACHINE_PROVIDER)
        except ProvisionError as exc:
            log.error("cannot start attempt %s: %s", attempt.pk, exc)
            raise AttemptActionError(exc.user_message) from exc
        # The attempt runs on the newest version of its environment, fixed from here on.
        latest = environment_latest(slug=attempt.environment.slug)
        if latest is not None and latest.pk != attempt.environment_id:
            attempt.environment, attempt.time_limit_seconds = latest, latest.time_limit_seconds
            attempt.save(update_fields=["environment", "time_limit_seconds"])
        lease = Lease.objects.create(attempt=attempt, provider=settings.MACHINE_PROVIDER, state=Lease.State.REQUESTED,
                                     state_changed_at=clock.now(), progress_message="Waiting for a machine",
                                     nonce=secrets.token_urlsafe(24))
        attempt_transition(attempt=attempt, to=State.QUEUED, fields={"provisioning_started_at": clock.now(), "last_error": ""})
        _push_state(attempt)
        _enqueue_provision(lease.pk)
    log.info("attempt %s: machine requested (lease %s, provider %s)", attempt.pk, lease.pk, lease.provider)
    return attempt


def lease_provision(*, lease_id: int) -> Lease | None:
    """The provisioning task's body: reserve capacity (or stay queued), make and prepare the
    machine, then start the clock. Safe to run twice: a second run while one is in progress
    does nothing, and a run redelivered after a crash tears down what was half-made and starts
    over."""
    lease = Lease.objects.filter(pk=lease_id).first()
    if lease is None or lease.state not in (Lease.State.REQUESTED, Lease.State.PROVISIONING):
        return lease
    # Lease ids repeat across databases sharing one Redis (test runs): the creation time
    # makes the claim this lease's own.
    claim = f"baseliner:lease-provision:{lease_id}:{lease.created.timestamp()}"
    if not cache.add(claim, "1", timeout=int(settings.LEASE_PROVISION_TIMEOUT_MINUTES * 60)):
        log.info("lease %s is already being provisioned", lease_id)
        return lease
    try:
        return _provision(lease_id)
    finally:
        cache.delete(claim)


def _provision(lease_id: int) -> Lease:
    with transaction.atomic():
        lease = _locked(lease_id)
        provider = get_provider(lease.provider)
        attempt = Attempt.objects.select_for_update().select_related("environment").get(pk=lease.attempt_id)
        if lease.state not in (Lease.State.REQUESTED, Lease.State.PROVISIONING):
            return lease
        if attempt.state not in (State.QUEUED, State.PROVISIONING) and lease.state == Lease.State.REQUESTED:
            return _set_state(lease, Lease.State.TORN_DOWN, torn_down_at=clock.now(), progress_message="Not needed any more")
        redelivered = lease.state == Lease.State.PROVISIONING
        if not redelivered:
            if not provider.allocate(lease=lease):
                lease.progress_message = "Waiting for a free machine"
                lease.save(update_fields=["progress_message", "host", "gpu_index"])
                position = lease_queue_position(lease=lease)
                attempt_event(attempt.pk, "queue", {"position": position, "message": lease.progress_message})
                log.info("lease %s waits in the queue (position %s)", lease.pk, position)
                return lease
            _set_state(lease, Lease.State.PROVISIONING, progress=1, progress_message="A machine was reserved for you",
                       host=lease.host, gpu_index=lease.gpu_index)
            if attempt.state == State.QUEUED:
                attempt_transition(attempt=attempt, to=State.PROVISIONING)
            _push_state(attempt)
    if redelivered:
        log.warning("lease %s: provisioning was interrupted; cleaning up and starting again", lease.pk)
        provider.teardown(lease=lease)
    try:
        for event in provider.provision(lease=lease):
            _progress(lease, event)
        client = provider.client(lease=lease, as_admin=True)
        try:
            for event in prepare_machine(lease=lease, environment=attempt.environment, client=client):
                _progress(lease, event)
        finally:
            client.close()
    except CapacityUnavailable as exc:
        return _provision_requeued(lease, exc)
    except Exception as exc:  # noqa: BLE001 - any failure must clean up and offer a retry
        return _provision_failed(lease, exc)

    with transaction.atomic():
        lease = _locked(lease_id)
        attempt = Attempt.objects.select_for_update().get(pk=lease.attempt_id)
        still_wanted = lease.state == Lease.State.PROVISIONING and attempt.state == State.PROVISIONING
        if still_wanted:
            now = clock.now()
            _set_state(lease, Lease.State.READY, ready_at=now, last_healthy_at=now, health_failures=0, progress=100,
                       progress_message="Your machine is ready", error="")
            attempt = attempt_clock_start(attempt=attempt, at=now)
            attempt_event(attempt.pk, "provisioning", {"progress": 100, "message": "Your machine is ready"})
            _push_state(attempt)
    if not still_wanted:
        # Ended or torn down while we were making it: do not leave what we made behind.
        log.info("lease %s is not wanted any more; tearing it down", lease.pk)
        return lease_teardown(lease=lease, reason="the attempt no longer needed the machine")
    log.info("lease %s ready: attempt %s started", lease.pk, attempt.pk)
    return lease


def _progress(lease: Lease, event: dict) -> None:
    lease.progress = max(0, min(100, int(event.get("progress", lease.progress))))
    lease.progress_message = str(event.get("message", ""))[:300]
    lease.save(update_fields=PROVIDER_FIELDS)
    attempt_event(lease.attempt_id, "provisioning", {"progress": lease.progress, "message": lease.progress_message})


def _provision_failed(lease: Lease, exc: BaseException) -> Lease:
    detail = f"{type(exc).__name__}: {exc}"
    log.warning("lease %s: provisioning failed: %s", lease.pk, detail, exc_info=not isinstance(exc, ProvisionError))
    user_message = user_message_for(exc)
    torn_down = True
    try:
        get_provider(lease.provider).teardown(lease=lease)
    except Exception as teardown_exc:  # noqa: BLE001
        torn_down = False
        detail += f"; cleaning up also failed ({teardown_exc}); the reaper will retry"
        log.error("lease %s: cleanup after a failed provisioning failed: %s", lease.pk, teardown_exc)
    with transaction.atomic():
        lease = _locked(lease.pk)
        if torn_down:
            _set_state(lease, Lease.State.FAILED, torn_down_at=clock.now(), error=detail, progress_message=user_message)
        else:
            _set_state(lease, Lease.State.TEARING_DOWN, error=detail, progress_message=user_message)
        attempt = Attempt.objects.select_for_update().get(pk=lease.attempt_id)
        if attempt.state == State.PROVISIONING:
            attempt_transition(attempt=attempt, to=State.PROVISION_FAILED, fields={"last_error": user_message})
        audit_record(action="lease.provision_failed", attempt=attempt, target=f"lease:{lease.pk}", reason=detail,
                     data={"provider": lease.provider, "torn_down": torn_down})
        _push_state(attempt, error=user_message)
    if torn_down:
        lease_queue_advance()
    return lease


def _provision_requeued(lease: Lease, exc: CapacityUnavailable) -> Lease:
    """The provider has no machine now (a cloud zone out of GPUs): give back what was half-made
    and put the attempt back in the queue, clock stopped, with the provider's plain words.
    ``lease_queue_advance`` (after every teardown, and on every reaper run) tries it again."""
    log.info("lease %s: no capacity (%s); back in the queue", lease.pk, exc)
    try:
        get_provider(lease.provider).teardown(lease=lease)
    except Exception as teardown_exc:  # noqa: BLE001 - unsure what is left: fail like any failure
        return _provision_failed(lease, teardown_exc)
    message = user_message_for(exc)
    with transaction.atomic():
        lease = _locked(lease.pk)
        if lease.state != Lease.State.PROVISIONING:
            return lease
        _set_state(lease, Lease.State.REQUESTED, progress=0, progress_message=message, error=f"no capacity: {exc}"[:5000],
                   provider_state={}, address="", port=None, host_key="", host_key_fingerprint="", credentials_encrypted="")
        attempt = Attempt.objects.select_for_update().get(pk=lease.attempt_id)
        if attempt.state == State.PROVISIONING:
            attempt_transition(attempt=attempt, to=State.QUEUED)
        attempt_event(attempt.pk, "provisioning", {"progress": 0, "message": message})
        attempt_event(attempt.pk, "queue", {"position": lease_queue_position(lease=lease), "message": message})
        _push_state(attempt)
    return lease


def lease_teardown(*, lease: Lease, reason: str, actor=None) -> Lease:
    """Give the lease's machine back. Idempotent: a torn-down or failed lease is left alone, and
    providers treat "already gone" as success. If the machine cannot be reached the lease stays
    ``tearing_down`` (its GPU still reserved) with the error for staff, and the reaper retries."""
    with transaction.atomic():
        lease = _locked(lease.pk)
        if lease.state in (Lease.State.TORN_DOWN, Lease.State.FAILED):
            return lease
        was = lease.state
        _set_state(lease, Lease.State.TEARING_DOWN)
    try:
        if was != Lease.State.REQUESTED:  # a queued lease has nothing on any machine yet
            get_provider(lease.provider).teardown(lease=lease)
    except Exception as exc:  # noqa: BLE001
        detail = f"{type(exc).__name__}: {exc}"
        log.error("lease %s: teardown failed (%s); the reaper will retry", lease.pk, detail)
        with transaction.atomic():
            lease.error = f"teardown failed: {detail}"[:5000]
            lease.save(update_fields=["error"])
            audit_record(action="lease.teardown_failed", actor=actor, attempt=lease.attempt, target=f"lease:{lease.pk}",
                         reason=reason, data={"error": detail})
        return lease
    with transaction.atomic():
        lease = _locked(lease.pk)
        _set_state(lease, Lease.State.TORN_DOWN, torn_down_at=clock.now())
        audit_record(action="lease.teardown", actor=actor, attempt=lease.attempt, target=f"lease:{lease.pk}", reason=reason,
                     data={"provider": lease.provider, "host": lease.host_id, "gpu_index": lease.gpu_index, "was": was})
        attempt_event(lease.attempt_id, "machine", {"state": "torn_down", "message": "Your machine has been shut down."})
        _release_waiting_attempt(lease.attempt_id)
    log.info("lease %s torn down: %s", lease.pk, reason)
    lease_queue_advance()
    return lease


def _release_waiting_attempt(attempt_id: int) -> None:
    """A lease taken away before the clock started (staff, the reaper) must not leave its
    attempt waiting for ever: offer Start again (or Retry) with a word of why."""
    attempt = Attempt.objects.select_for_update().get(pk=attempt_id)
    if attempt.state not in (State.QUEUED, State.PROVISIONING):
        return
    if Lease.objects.filter(attempt_id=attempt_id, state__in=LIVE).exists():
        return
    message = "Your machine request was cancelled. Press Start to try again."
    to = State.ASSIGNED if attempt.state == State.QUEUED else State.PROVISION_FAILED
    attempt_transition(attempt=attempt, to=to, fields={"last_error": message})
    _push_state(attempt, error=message)


def lease_queue_advance() -> int:
    """A lease ended (or capacity was added): give every waiting lease another try, in order,
    and tell each waiting attempt its place. Returns how many are waiting."""
    waiting = list(Lease.objects.filter(state=Lease.State.REQUESTED).order_by("created", "pk"))
    for lease in waiting:
        _enqueue_provision(lease.pk)
        attempt_event(lease.attempt_id, "queue", {"position": lease_queue_position(lease=lease), "message": lease.progress_message})
    return len(waiting)


def lease_health_check(*, lease: Lease) -> Lease:
    """One health check. ``LEASE_HEALTH_FAILURES`` failures in a row make a ready lease
    ``unhealthy`` (the expert's page is told; staff see it in the Lease admin); one good
    check makes it ready again, and tells the machine what it missed meanwhile (an
    extension's deadline, see ``attempt_extend``)."""
    reason = get_provider(lease.provider).poll(lease=lease)
    recovered = False
    with transaction.atomic():
        lease = _locked(lease.pk)
        if lease.state not in (Lease.State.READY, Lease.State.UNHEALTHY):
            return lease
        now = clock.now()
        lease.last_health_at = now
        fields = ["last_health_at", "health_failures", "last_healthy_at", "error"]
        if reason is None:
            lease.health_failures, lease.last_healthy_at = 0, now
            lease.save(update_fields=fields)
            if lease.state == Lease.State.UNHEALTHY:
                _set_state(lease, Lease.State.READY)
                attempt_event(lease.attempt_id, "machine", {"healthy": True, "message": "Your machine is answering again."})
                log.info("lease %s is healthy again", lease.pk)
                recovered = True
        else:
            lease.health_failures += 1
            lease.error = f"health check: {reason}"[:5000]
            lease.save(update_fields=fields)
            if lease.state == Lease.State.READY and lease.health_failures >= settings.LEASE_HEALTH_FAILURES:
                _set_state(lease, Lease.State.UNHEALTHY)
                audit_record(action="lease.unhealthy", attempt=lease.attempt, target=f"lease:{lease.pk}", reason=reason,
                             data={"failures": lease.health_failures})
                attempt_event(lease.attempt_id, "machine", {
                    "healthy": False, "message": "Your machine is not answering. Staff have been told; your work is kept if it comes back."})
                log.warning("lease %s is unhealthy after %s failed checks: %s", lease.pk, lease.health_failures, reason)
    if recovered:  # outside the lock (this talks to the machine)
        _machine_catch_up(lease)
    return lease


def _machine_catch_up(lease: Lease) -> None:
    from baseliner.attempts.lifecycle import attempt_machine_catch_up

    try:
        attempt_machine_catch_up(attempt_id=lease.attempt_id)
    except Exception:  # the sweeper retries while the machine's deadline is out of date
        log.warning("lease %s: telling the recovered machine its deadline failed", lease.pk, exc_info=True)


def lease_health_check_all() -> int:
    leases = list(Lease.objects.filter(state__in=[Lease.State.READY, Lease.State.UNHEALTHY]))
    for lease in leases:
        lease_health_check(lease=lease)
    return len(leases)


def _end_steps_may_need_machine(attempt: Attempt, *, at) -> bool:
    """An ended attempt whose end steps (archive, final scoring, then their own teardown) are
    still running keeps its machine, for at most LEASE_END_GRACE_MINUTES after the end."""
    if attempt.ended_at is None or getattr(attempt, "end_steps_finished_at", None) is not None:
        return False
    if not getattr(attempt, "end_steps", None):
        return False  # ended without end steps (e.g. withdrawn before starting)
    return at - attempt.ended_at < timedelta(minutes=settings.LEASE_END_GRACE_MINUTES)


def lease_reap(*, at=None) -> list[tuple[int, str]]:
    """Tear down leases nobody needs: those whose attempt no longer needs a machine, those not
    answering for ``LEASE_UNREACHABLE_MINUTES``, and those whose provisioning stalled; retry
    teardowns that failed. Each teardown is an AuditEvent. Returns [(lease id, reason)]."""
    at = at or clock.now()
    unreachable = timedelta(minutes=settings.LEASE_UNREACHABLE_MINUTES)
    stalled = timedelta(minutes=settings.LEASE_PROVISION_TIMEOUT_MINUTES)
    done = []
    for lease in Lease.objects.filter(state__in=LIVE).select_related("attempt"):
        since = lease.state_changed_at or lease.created
        reason = None
        if lease.attempt.state not in ATTEMPT_NEEDS_MACHINE:
            if _end_steps_may_need_machine(lease.attempt, at=at):
                continue  # the end of the attempt archives and scores on the machine first
            reason = f"no live attempt (the attempt is {lease.attempt.get_state_display().lower()})"
        elif lease.state in (Lease.State.READY, Lease.State.UNHEALTHY):
            last_good = lease.last_healthy_at or lease.ready_at or lease.created
            if at - last_good > unreachable:
                reason = f"unreachable for more than {settings.LEASE_UNREACHABLE_MINUTES:g} minutes"
        elif lease.state == Lease.State.PROVISIONING and at - since > stalled:
            _provision_failed(lease, ProvisionError(f"provisioning did not finish within {settings.LEASE_PROVISION_TIMEOUT_MINUTES:g} minutes"))
            done.append((lease.pk, "provisioning stalled"))
            continue
        elif lease.state == Lease.State.TEARING_DOWN and at - since > timedelta(minutes=2):
            reason = "retrying a teardown that did not finish"
        if reason:
            lease_teardown(lease=lease, reason=f"reaper: {reason}")
            done.append((lease.pk, reason))
    lease_queue_advance()
    return done
