"""Staff routes: reviewers only. Experts (even on their own attempt) and anonymous users get
404 or the login page; annotations and validity edits are audited and reversible."""
import pytest

from baseliner.audit.models import AuditEvent
from baseliner.review.models import Annotation, ExportJob
from baseliner.review.services import annotation_create
from tests import factories
from tests.review_data import command, finished_attempt, recording, running_attempt, score

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    attempt = finished_attempt()
    recording(attempt, [[0.5, "o", "$ "], [1.0, "o", "ls\r\n"]])
    command(attempt, 1, "ls")
    staff = factories.user(staff=True)
    annotation = annotation_create(attempt=attempt, author=staff, tag="noteworthy")
    job = ExportJob.objects.create(filters={})
    return {"attempt": attempt, "staff": staff, "annotation": annotation, "job": job}


def staff_routes(s):
    a, n, j = s["attempt"].pk, s["annotation"].pk, s["job"].pk
    return [
        ("get", "/review/"), ("get", "/review/monitor.json"), ("get", f"/review/attempts/{a}/"),
        ("get", f"/review/attempts/{a}/cast?terminal=main"), ("post", f"/review/attempts/{a}/annotations"), ("post", f"/review/annotations/{n}/remove"),
        ("post", f"/review/annotations/{n}/restore"), ("post", f"/review/attempts/{a}/invalidate"),
        ("post", f"/review/attempts/{a}/revalidate"), ("get", "/review/analysis/"), ("get", "/review/analysis.csv"),
        ("get", "/review/exports/"), ("post", "/review/exports/"), ("get", f"/review/exports/{j}.json"),
        ("get", f"/review/exports/{j}/download"),
    ]


def test_experts_get_404_on_every_staff_route_even_for_their_own_attempt(client, setup):
    client.force_login(setup["attempt"].expert)
    for method, url in staff_routes(setup):
        response = getattr(client, method)(url, {"tag": "x", "reason": "y"} if method == "post" else None)
        assert response.status_code in (403, 404), (method, url, response.status_code)
    assert not ExportJob.objects.exclude(pk=setup["job"].pk).exists()
    setup["attempt"].refresh_from_db()
    assert setup["attempt"].is_invalid is False


def test_anonymous_users_are_sent_to_log_in(client, setup):
    for method, url in staff_routes(setup):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_staff_review_page_shows_the_logs(client, setup):
    a = setup["attempt"]
    score(a, 120, 0.4, message="fast enough")
    client.force_login(setup["staff"])
    html = client.get(f"/review/attempts/{a.pk}/").content.decode()
    for text in ("Terminal recordings", "Command log (1)", "Score #1: 0.400", "Clock: Started", "fast enough", "noteworthy"):
        assert text in html, text
    cast = b"".join(client.get(f"/review/attempts/{a.pk}/cast?terminal=main").streaming_content).decode().splitlines()
    assert cast[0].startswith('{"version": 2')
    assert '"m", "Score #1: 0.400"' in "\n".join(cast)
    assert client.get(f"/review/attempts/{a.pk}/cast?terminal=nope").status_code == 404


def test_annotations_and_invalidation_are_audited_and_reversible(client, setup):
    a = setup["attempt"]
    client.force_login(setup["staff"])
    client.post(f"/review/attempts/{a.pk}/annotations", {"tag": "rule violation", "comment": "looked at the scorer", "elapsed_seconds": "3600"})
    ann = Annotation.objects.get(tag="rule violation")
    assert ann.elapsed_seconds == 3600 and ann.author == setup["staff"]
    client.post(f"/review/annotations/{ann.pk}/remove")
    ann.refresh_from_db()
    assert ann.removed_at is not None
    client.post(f"/review/annotations/{ann.pk}/restore")
    ann.refresh_from_db()
    assert ann.removed_at is None
    client.post(f"/review/attempts/{a.pk}/invalidate", {"reason": "rule violation"})
    a.refresh_from_db()
    assert a.is_invalid is True and a.invalid_reason == "rule violation"
    client.post(f"/review/attempts/{a.pk}/revalidate")
    a.refresh_from_db()
    assert a.is_invalid is False and a.invalid_reason == ""
    actions = list(AuditEvent.objects.filter(attempt=a, action__startswith=("annotation")).values_list("action", flat=True))
    actions += list(AuditEvent.objects.filter(attempt=a, action__startswith="attempt.").values_list("action", flat=True))
    assert sorted(actions) == sorted(["annotation.create", "annotation.create", "annotation.remove", "annotation.restore",
                                      "attempt.invalidate", "attempt.revalidate"])


def test_bad_annotation_input_is_refused_with_a_message(client, setup):
    client.force_login(setup["staff"])
    a = setup["attempt"]
    response = client.post(f"/review/attempts/{a.pk}/annotations", {"tag": "x", "elapsed_seconds": "soon"}, follow=True)
    assert "“soon” is not a number of seconds." in response.content.decode()
    response = client.post(f"/review/attempts/{a.pk}/invalidate", {"reason": ""}, follow=True)
    assert "Say why the attempt is invalid" in response.content.decode()


def test_monitor_lists_running_attempts_with_best_score_and_cost(client, setup):
    from decimal import Decimal

    from baseliner.machines.models import Lease

    live = running_attempt()
    score(live, 600, 0.7)
    Lease.objects.create(attempt=live, provider="ssh", state="ready", cost_per_hour=Decimal("2.50"), gpu_index=0)
    client.force_login(setup["staff"])
    rows = client.get("/review/monitor.json").json()["attempts"]
    assert [r["id"] for r in rows] == [live.pk]
    row = rows[0]
    assert row["best"] == pytest.approx(0.7) and row["scorings"] == 1 and row["machine"] == "ready"
    assert 7 * 3600 - 5 < row["time_left"] <= 7 * 3600
    assert row["cost"] == pytest.approx(0.0, abs=0.01)  # the lease was created just now


def test_the_review_page_links_the_final_files_archive(client, setup, settings, tmp_path):
    settings.ARCHIVES_DIR = tmp_path
    a = setup["attempt"]
    (tmp_path / f"attempt-{a.pk}-0a1b2c3d.tar.gz").write_bytes(b"tarball")
    (tmp_path / f"attempt-{a.pk}-0a1b2c3d.manifest.json").write_text("{}")
    a.end_steps = {"archive": {"status": "done", "data": {"archive": f"attempt-{a.pk}-0a1b2c3d.tar.gz",
                                                            "manifest": f"attempt-{a.pk}-0a1b2c3d.manifest.json"}}}
    a.save(update_fields=["end_steps"])
    client.force_login(setup["staff"])
    html = client.get(f"/review/attempts/{a.pk}/").content.decode()
    assert f'href="/attempts/{a.pk}/archive.tar.gz">Download the final files archive' in html
    response = client.get(f"/attempts/{a.pk}/archive.tar.gz")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"tarball"
