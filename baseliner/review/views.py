"""Staff pages: monitor, attempt review, analysis, export. Thin: check access, call a
selector or service, render. Every route answers 404 to anyone who is not a reviewer."""
import csv
from datetime import timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from baseliner.attempts import clock
from baseliner.attempts.access import attempt_for_user, is_reviewer
from baseliner.attempts.ending import archive_paths
from baseliner.attempts.models import Cohort
from baseliner.audit.models import AuditEvent
from baseliner.catalog.models import Environment
from baseliner.recording.models import CommandRecord
from baseliner.scoring.models import ScoreEntry
from baseliner.surveys.services import survey_answer_label, survey_questions_by_id

from . import analysis, casts, services
from .bundle import export_file
from .models import Annotation, ExportJob
from .monitor import monitor_rows


def reviewer_required(view):
    """Staff with the attempts view permission only; everyone else gets 404."""

    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not is_reviewer(request.user):
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapper


def _reviewed_attempt(request, attempt_id, *, write=False):
    return attempt_for_user(user=request.user, attempt_id=attempt_id, write=write)


# --- monitor ----------------------------------------------------------------------------

@never_cache
@reviewer_required
def monitor(request):
    from baseliner.attempts.models import Attempt
    from baseliner.attempts.states import FINISHED_STATES

    finished = (Attempt.objects.filter(state__in=FINISHED_STATES, started_at__isnull=False)
                .select_related("environment", "expert").order_by("-ended_at")[:100])
    return render(request, "review/monitor.html", {"rows": monitor_rows(), "finished": finished})


@never_cache
@reviewer_required
def monitor_json(request):
    return JsonResponse({"now": clock.now().isoformat(), "attempts": monitor_rows()})


# --- attempt review -------------------------------------------------------------------------

def _live_terminal_url(attempt):
    for name in ("attempt-terminal-watch", "terminal-watch", "attempt-watch"):
        try:
            return reverse(name, args=[attempt.pk])
        except NoReverseMatch:
            continue
    return None


def _markers(attempt):
    """Score submissions and clock events, as (wall time, label, kind)."""
    out = []
    for e in attempt.score_entries.all():
        score = f"{e.normalized_score:.3f}" if e.normalized_score is not None else e.status
        out.append((e.requested_at or e.created, f"Score #{e.sequence}: {score}", "score"))
    for c in attempt.clock_events.all():
        out.append((c.at, f"Clock: {c.get_kind_display()}", "clock"))
    if attempt.started_at is not None:
        # A moment is stored as attempt time; placed on the wall clock without pauses.
        for a in attempt.annotations.filter(removed_at__isnull=True, elapsed_seconds__isnull=False):
            out.append((attempt.started_at + timedelta(seconds=a.elapsed_seconds), f"Annotation: {a.tag}", "annotation"))
    return sorted(out, key=lambda m: m[0])


@never_cache
@reviewer_required
def attempt_review(request, attempt_id):
    attempt = _reviewed_attempt(request, attempt_id)
    groups = casts.terminals(attempt)
    terminals = [
        {"name": name, "url": reverse("review-cast", args=[attempt.pk]) + "?terminal=" + name,
         "base": recs[0].started_at.timestamp(), "count": len(recs)}
        for name, recs in groups.items()
    ]
    markers = _markers(attempt)
    entries = list(attempt.score_entries.all())
    commands = list(CommandRecord.objects.filter(attempt=attempt).order_by("started_at", "pk"))
    response = getattr(attempt, "survey_response", None) if hasattr(attempt, "survey_response") else None
    survey_rows = []
    if response is not None:
        questions = survey_questions_by_id(response.survey)
        for qid, answer in (response.answers or {}).items():
            label = survey_answer_label(questions.get(qid), answer)
            survey_rows.append({"id": qid, "text": questions.get(qid, {}).get("text", qid),
                                "answer": f"{answer} · {label}" if label else answer})
    started = attempt.started_at
    data = {
        "attempt": attempt.pk,
        "started": started.timestamp() if started else None,
        "terminals": terminals,
        "markers": [{"at": at.timestamp(), "label": label, "kind": kind} for at, label, kind in markers],
        "scores": [
            {"sequence": e.sequence, "elapsed": e.elapsed_seconds, "normalized": e.normalized_score, "status": e.status}
            for e in entries
        ],
        "aggregation": attempt.environment.aggregation,
    }
    return render(request, "review/attempt.html", {
        "attempt": attempt,
        "environment": attempt.environment,
        "time_used": clock.time_used(attempt),
        "time_left": clock.time_left(attempt),
        "terminals": terminals,
        "markers": markers,
        "entries": entries,
        "commands": commands,
        "editor_saves": attempt.editor_saves.all(),
        "notes": attempt.notes.select_related("author"),
        "clock_events": attempt.clock_events.select_related("actor"),
        "survey": response,
        "survey_rows": survey_rows,
        "archive": archive_paths(attempt),
        "audit": AuditEvent.objects.filter(attempt=attempt).select_related("actor"),
        "annotations": attempt.annotations.select_related("author", "removed_by"),
        "tags": [t.value for t in Annotation.Tag],
        "live_terminal_url": _live_terminal_url(attempt),
        "review_data": data,
        "can_write": request.user.has_perm("attempts.change_attempt"),
    })


@reviewer_required
@require_GET
def attempt_cast(request, attempt_id):
    """A terminal's recordings stitched into one asciicast, streamed."""
    attempt = _reviewed_attempt(request, attempt_id)
    terminal = request.GET.get("terminal", "")
    recordings = casts.terminals(attempt).get(terminal)
    if not recordings:
        raise Http404("No recording of that terminal.")
    markers = [(at, label) for at, label, _ in _markers(attempt)]
    response = StreamingHttpResponse(casts.stitched_cast(recordings, markers=markers), content_type="application/x-asciicast")
    response["Cache-Control"] = "no-store"
    return response


def _float_or_none(value):
    value = (value or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise services.ReviewActionError(f"“{value}” is not a number of seconds.") from None


@reviewer_required
@require_POST
def annotation_add(request, attempt_id):
    attempt = _reviewed_attempt(request, attempt_id, write=True)
    try:
        services.annotation_create(
            attempt=attempt, author=request.user, tag=request.POST.get("tag", ""), comment=request.POST.get("comment", ""),
            elapsed_seconds=_float_or_none(request.POST.get("elapsed_seconds")),
        )
        messages.success(request, "Annotation added.")
    except services.ReviewActionError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("review-attempt", args=[attempt.pk]) + "#annotations")


@reviewer_required
@require_POST
def annotation_toggle(request, annotation_id, action):
    annotation = get_object_or_404(Annotation, pk=annotation_id)
    attempt = _reviewed_attempt(request, annotation.attempt_id, write=True)
    if action == "remove":
        services.annotation_remove(annotation=annotation, actor=request.user)
        messages.success(request, "Annotation removed (it can be restored).")
    else:
        services.annotation_restore(annotation=annotation, actor=request.user)
        messages.success(request, "Annotation restored.")
    return redirect(reverse("review-attempt", args=[attempt.pk]) + "#annotations")


@reviewer_required
@require_POST
def attempt_validity(request, attempt_id, action):
    attempt = _reviewed_attempt(request, attempt_id, write=True)
    try:
        if action == "invalidate":
            services.attempt_invalidate(attempt=attempt, actor=request.user, reason=request.POST.get("reason", ""))
            messages.success(request, "The attempt is marked invalid: analysis and export leave it out.")
        else:
            services.attempt_revalidate(attempt=attempt, actor=request.user, reason=request.POST.get("reason", ""))
            messages.success(request, "The attempt is valid again.")
    except services.ReviewActionError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("review-attempt", args=[attempt.pk]) + "#validity")


# --- analysis -----------------------------------------------------------------------------

def _analysis_filters(request) -> dict:
    cohort = request.GET.get("cohort", "")
    return {
        "environment": request.GET.get("environment", "") or None,
        "cohort": int(cohort) if cohort.isdigit() else None,
        "include_invalid": request.GET.get("include_invalid") == "1",
    }


@never_cache
@reviewer_required
def analysis_page(request):
    filters = _analysis_filters(request)
    groups = analysis.analysis_groups(**filters)
    charts = [
        {"environment": g.environment, "histogram": g.histogram(), "curve": g.curve(), "score_at_k": g.score_at_k(),
         "finals": sorted(g.finals)}
        for g in groups
    ]
    return render(request, "review/analysis.html", {
        "groups": [{"g": g, "summary": g.summary(), "at_hours": g.at_hours(), "score_at_k": g.score_at_k()} for g in groups],
        "charts": charts,
        "filters": filters,
        "environments": Environment.objects.order_by("slug").values_list("slug", flat=True).distinct(),
        "cohorts": Cohort.objects.order_by("name"),
        "query": request.GET.urlencode(),
        "threshold": analysis.THRESHOLD,
    })


@reviewer_required
def analysis_csv(request):
    """Raw numbers: ``kind=attempts`` (one row per attempt) or ``kind=summary`` (per environment:
    each figure, with k or hours where it has one)."""
    filters = _analysis_filters(request)
    kind = request.GET.get("kind", "attempts")
    if kind not in ("attempts", "summary"):
        return HttpResponse("kind must be attempts or summary", status=400, content_type="text/plain")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="baseliner-analysis-{kind}.csv"'
    w = csv.writer(response)
    groups = analysis.analysis_groups(**filters)
    if kind == "attempts":
        hours = analysis.CHECKPOINT_HOURS
        w.writerow(["attempt", "environment", "environment_version", "cohort", "aggregation", "final_normalized_score",
                    "has_score", *[f"at_{h}h" for h in hours], "scorings", "hours_used", "scorings_per_hour",
                    "survey_score_matched_expectations", "is_invalid"])
        for g in groups:
            for a in g.attempts:
                w.writerow([a.attempt_id, a.environment, a.environment_version, a.cohort, a.aggregation, a.final, a.has_score,
                            *[a.at_hours[h] for h in hours], a.scorings, round(a.hours_used, 6), a.scorings_per_hour,
                            a.survey_answer or "", a.is_invalid])
    else:
        w.writerow(["environment", "figure", "k_or_hours", "value"])
        for g in groups:
            for key, value in g.summary().items():
                if key != "environment":
                    w.writerow([g.environment, key, "", value])
            for row in g.at_hours():
                w.writerow([g.environment, "mean_at_hours", row["hours"], row["mean"]])
                w.writerow([g.environment, "median_at_hours", row["hours"], row["median"]])
            for row in g.score_at_k():
                w.writerow([g.environment, "score_at_k", row["k"], row["score"]])
    return response


# --- export -------------------------------------------------------------------------------

def _job_json(job: ExportJob) -> dict:
    return {
        "id": job.pk, "status": job.status, "progress": job.progress, "message": job.message, "error": job.error,
        "counts": job.counts, "size": job.size, "sha256": job.sha256,
        "download": reverse("review-export-download", args=[job.pk]) if job.status == ExportJob.Status.DONE else None,
    }


@never_cache
@reviewer_required
def exports_page(request):
    if request.method == "POST":
        if not request.user.has_perm("attempts.change_attempt"):
            raise Http404("No such page.")
        filters = {k: request.POST.get(k, "") for k in ("cohort", "environment", "since", "until")}
        filters["include_invalid"] = request.POST.get("include_invalid") == "1"
        try:
            job = services.export_request(actor=request.user, filters=filters)
        except services.ReviewActionError as exc:
            messages.error(request, str(exc))
            return redirect("review-exports")
        messages.success(request, f"Export {job.pk} queued.")
        return redirect("review-exports")
    return render(request, "review/exports.html", {
        "jobs": ExportJob.objects.select_related("created_by")[:50],
        "environments": Environment.objects.order_by("slug").values_list("slug", flat=True).distinct(),
        "cohorts": Cohort.objects.order_by("name"),
    })


@never_cache
@reviewer_required
def export_status(request, job_id):
    return JsonResponse(_job_json(get_object_or_404(ExportJob, pk=job_id)))


@reviewer_required
def export_download(request, job_id):
    job = get_object_or_404(ExportJob, pk=job_id)
    path = export_file(job)
    if path is None:
        raise Http404("This export has no bundle (yet).")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)
