from .models import AuditEvent


def audit_record(*, action: str, actor=None, attempt=None, target: str = "", reason: str = "", data: dict | None = None) -> AuditEvent:
    """Append an audit event. Call inside the same transaction as the change it records."""
    return AuditEvent.objects.create(
        action=action,
        actor=actor if (actor is not None and actor.is_authenticated) else None,
        attempt=attempt,
        target=target,
        reason=reason,
        data=data or {},
    )
