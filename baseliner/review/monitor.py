"""The live monitor's rows: every running or paused attempt, read fresh on every poll."""
from __future__ import annotations

import math
from collections import defaultdict

from django.db.models import Count, Max
from django.urls import reverse

from baseliner.attempts import clock
from baseliner.attempts.models import Attempt
from baseliner.attempts.states import LIVE_STATES
from baseliner.machines.models import Lease
from baseliner.recording.models import CommandRecord, EditorSave
from baseliner.recording.services import recording_alerts
from baseliner.scoring.models import ScoreEntry

from .analysis import attempt_points, best_so_far, has_counting_entry


def lease_cost(lease: Lease, *, at) -> float | None:
    """Estimated cost so far: cost per hour times the hours the lease has existed (until torn down)."""
    if lease.cost_per_hour is None:
        return None
    end = lease.torn_down_at or at
    hours = max(0.0, (end - lease.created).total_seconds() / 3600)
    return float(lease.cost_per_hour) * hours


def monitor_rows() -> list[dict]:
    at = clock.now()
    attempts = list(
        Attempt.objects.filter(state__in=LIVE_STATES).select_related("environment", "expert", "assignment__cohort").order_by("pk")
    )
    ids = [a.pk for a in attempts]
    points = attempt_points(attempts)
    counts = dict(ScoreEntry.objects.filter(attempt_id__in=ids).values_list("attempt_id").annotate(n=Count("pk")))
    activity: dict[int, list] = defaultdict(list)
    for model, field in ((ScoreEntry, "created"), (CommandRecord, "started_at"), (EditorSave, "created")):
        for attempt_id, last in model.objects.filter(attempt_id__in=ids).values_list("attempt_id").annotate(last=Max(field)):
            activity[attempt_id].append(last)
    leases: dict[int, list[Lease]] = defaultdict(list)
    for lease in Lease.objects.filter(attempt_id__in=ids).select_related("host").order_by("created"):
        leases[lease.attempt_id].append(lease)
    alerts = recording_alerts(attempt_ids=ids)
    rows = []
    for a in attempts:
        live = [le for le in leases[a.pk] if le.state in Lease.LIVE_STATES]
        lease = live[-1] if live else (leases[a.pk][-1] if leases[a.pk] else None)
        costs = [c for le in leases[a.pk] if (c := lease_cost(le, at=at)) is not None]
        pts = points.get(a.pk, [])
        best = best_so_far(pts, math.inf, aggregation=a.environment.aggregation) if has_counting_entry(pts, aggregation=a.environment.aggregation) else None
        last = max((t for t in activity[a.pk] if t is not None), default=None)
        gpu = ""
        if lease is not None:
            info = lease.gpu_info or {}
            gpu = info.get("name") or info.get("model") or ""
            if lease.gpu_index is not None:
                gpu = f"{gpu} #{lease.gpu_index}".strip()
            if lease.host:
                gpu = f"{gpu} on {lease.host.name}".strip()
        rows.append({
            "id": a.pk,
            "url": reverse("review-attempt", args=[a.pk]),
            "expert": a.expert.get_username(),
            "environment": f"{a.environment.slug} v{a.environment.version}",
            "cohort": a.assignment.cohort.name if a.assignment.cohort else "",
            "state": a.state,
            "time_left": round(clock.time_left(a, at=at)),
            "best": best,
            "scorings": counts.get(a.pk, 0),
            "last_activity": last.isoformat() if last else None,
            "idle_seconds": round((at - last).total_seconds()) if last else None,
            "machine": lease.state if lease else "none",
            "last_healthy": lease.last_healthy_at.isoformat() if lease and lease.last_healthy_at else None,
            "health_failures": lease.health_failures if lease else 0,
            "gpu": gpu,
            "cost": round(sum(costs), 2) if costs else None,
            "invalid": a.is_invalid,
            "alerts": alerts.get(a.pk, []),
        })
    return rows
