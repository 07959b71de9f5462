"""The staff review pages in words a reviewer reads at a glance."""
import pytest

from baseliner.attempts.models import Cohort
from baseliner.review.models import ExportJob
from tests import factories
from tests.review_data import finished_attempt, running_attempt

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(factories.user(superuser=True))
    return client


def test_the_review_header_gives_times_as_h_mm_ss_and_no_time_left_once_over(staff_client):
    done = finished_attempt(hours=2.5)
    html = staff_client.get(f"/review/attempts/{done.pk}/").content.decode()
    assert "used 2:30:00" in html and "left" not in html.split("used 2:30:00")[1].split("·")[0]
    live = running_attempt(time_limit_seconds=8 * 3600)
    html = staff_client.get(f"/review/attempts/{live.pk}/").content.decode()
    assert "used 1:00:0" in html and ", left 6:59:5" in html


def test_export_filters_read_as_words(staff_client):
    pilot = Cohort.objects.create(name="Pilot")
    ExportJob.objects.create(filters={"cohort": None, "environment": "", "since": "", "until": "", "include_invalid": False})
    ExportJob.objects.create(filters={"cohort": pilot.pk, "environment": "demo", "since": "2026-11-01", "until": "",
                                      "include_invalid": True})
    html = staff_client.get("/review/exports/").content.decode()
    assert "All valid attempts" in html
    assert "cohort Pilot · environment demo · since 2026-11-01 · invalid attempts included" in html
    assert "{&#x27;cohort&#x27;" not in html and "'include_invalid'" not in html


def test_score_details_read_as_json_not_python(staff_client):
    from tests.review_data import score

    done = finished_attempt(hours=1)
    score(done, 600, 1.5, message="ok", details={"time_ms": 4.25, "first_wrong_index": None, "note": "größer"})
    html = staff_client.get(f"/review/attempts/{done.pk}/").content.decode()
    assert "&quot;time_ms&quot;: 4.25" in html and "&quot;first_wrong_index&quot;: null" in html
    assert "größer" in html
    assert "&#x27;time_ms&#x27;" not in html and "None" not in html.split("Score log")[1].split("</table>")[0]


def test_a_scale_answer_reads_as_its_position_and_its_words(staff_client):
    from tests.review_data import survey_answer

    done = finished_attempt(hours=1)
    survey_answer(done, {"difficulty": 2, "score_matched_expectations": "partly"})
    html = staff_client.get(f"/review/attempts/{done.pk}/").content.decode()
    survey = html.split('id="survey"')[1].split("</section>")[0]
    assert "<dd>2 · Easy</dd>" in survey and "<dd>partly</dd>" in survey
