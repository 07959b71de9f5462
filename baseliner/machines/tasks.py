"""Celery tasks for machines. Thin: take ids, re-fetch, call a service; safe to run twice."""
from celery import shared_task

from . import services
from .models import Lease


@shared_task(name="machines.lease_provision", acks_late=True, ignore_result=True)
def lease_provision_task(lease_id: int) -> None:
    # acks_late: a worker that dies mid-way gets the task redelivered; lease_provision then
    # cleans up the half-made machine and starts again (and ignores a duplicate that overlaps).
    services.lease_provision(lease_id=lease_id)


@shared_task(name="machines.lease_teardown", acks_late=True, ignore_result=True)
def lease_teardown_task(lease_id: int, reason: str) -> None:
    lease = Lease.objects.filter(pk=lease_id).first()
    if lease is not None:
        services.lease_teardown(lease=lease, reason=reason)


@shared_task(name="machines.lease_health_check_all", ignore_result=True)
def lease_health_check_all_task() -> None:
    services.lease_health_check_all()


@shared_task(name="machines.lease_reap", ignore_result=True)
def lease_reap_task() -> None:
    services.lease_reap()


@shared_task(name="machines.ec2_reap", ignore_result=True)
def ec2_reap_task() -> None:
    """Terminate this deployment's EC2 instances that no live lease accounts for."""
    from provisioning.ec2 import ec2_reap

    ec2_reap()
