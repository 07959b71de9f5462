"""The anonymized export: planted personal data and secrets never reach the bundle, the
commands survive with those parts replaced, pseudonyms are stable per key, the manifest
verifies, invalid attempts are left out, and it runs as a Celery job."""
import hashlib
import io
import json
import time
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from baseliner.attempts.models import ClockEvent, Note
from baseliner.machines.models import Lease
from baseliner.review import casts
from baseliner.review.bundle import export_file
from baseliner.review.models import ExportJob
from baseliner.review.services import ReviewActionError, attempt_invalidate, attempt_revalidate, export_request
from tests import factories
from tests.review_data import command, finished_attempt, recording, score, survey_answer

API_KEY = "sk-live-9f8e7d6c5b4a3f2e1d0c9b8a7f6e"
HF_TOKEN = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz123456"
UNIX_USER = "bl5e1f0a9c"
PLANTED = [
    "zorblax", "Quentin", "Farnsworth", "quentin.f@privatemail.example.org", "privatemail", "10.20.30.40",
    "fd12:3456:789a::7", API_KEY, API_KEY[8:20], HF_TOKEN, UNIX_USER, "gpu-node-17", "lab.internal",
    "nonce-7c1d9e2f4a6b8c0d", "2026-03-14", "Mar 14",
]


def planted_attempt():
    expert = factories.user(username="zorblax")
    expert.first_name, expert.last_name, expert.email = "Quentin", "Farnsworth", "quentin.f@privatemail.example.org"
    expert.save(update_fields=["first_name", "last_name", "email"])
    a = finished_attempt(expert=expert, slug="kernel", y_start=0.0, y_ref=10.0)
    Lease.objects.create(attempt=a, provider="ssh", state="torn_down", username=UNIX_USER, address="gpu-node-17.lab.internal",
                         nonce="nonce-7c1d9e2f4a6b8c0d", provider_state={"home": f"/home/{UNIX_USER}"})
    home = f"/home/{UNIX_USER}"
    command(a, 60, f"export OPENAI_API_KEY={API_KEY}", cwd=home)
    command(a, 120, "scp results.tar quentin.f@privatemail.example.org:/tmp/", cwd=f"{home}/work")
    command(a, 180, f"ssh zorblax@10.20.30.40 -i {home}/.ssh/id_ed25519", exit_status=255)
    command(a, 240, f'curl -H "Authorization: Bearer {HF_TOKEN}" https://gpu-node-17.lab.internal:8080/health')
    command(a, 300, "python train.py --lr 3e-4 --epochs 2", cwd=f"{home}/work")
    command(a, 360, "ping -c1 fd12:3456:789a::7")
    score(a, 400, 4.0, message=f"wrote {home}/out.txt for zorblax", details={"host": "gpu-node-17.lab.internal", "ms": 12.5})
    ClockEvent.objects.create(attempt=a, kind="extend", at=a.started_at + timedelta(hours=1), seconds=600,
                              reason="Quentin asked from 10.20.30.40", actor=factories.user(staff=True))
    note = Note.objects.create(attempt=a, author=expert, text=(
        f"lr 3e-4 diverged on gpu-node-17.lab.internal\nexport OPENAI_API_KEY={API_KEY}\nask quentin.f@privatemail.example.org (Quentin)"))
    Note.objects.filter(pk=note.pk).update(created=a.started_at + timedelta(seconds=500))
    survey_answer(a, {"score_matched_expectations": "yes", "difficulty": 4,
                      "comments": "Mail me: quentin.f@privatemail.example.org — Quentin Farnsworth"})
    prompt = f"\x1b[32m{UNIX_USER}@gpu-node-17\x1b[0m:~$ "
    typed = f"export OPENAI_API_KEY={API_KEY}"
    events = [[0.5, "o", prompt]]
    t = 1.0
    for ch in typed:  # typed and echoed one key at a time
        events += [[round(t, 3), "i", ch], [round(t + 0.01, 3), "o", ch]]
        t += 0.05
    events += [[t, "i", "\r"], [t + 0.01, "o", "\r\n"], [t + 0.5, "o", prompt + "echo hi\r\nhi\r\n"],
               [t + 1, "o", "Hello Quentin Farnsworth (zorblax), you are 10.20.30.40\r\n"],
               [t + 2, "o", f"ssh: connect to host gpu-node-17.lab.internal: \x1b[1m{HF_TOKEN[:12]}\x1b[0m{HF_TOKEN[12:]}\r\n"]]
    recording(a, events, header_extra={"title": "zorblax@gpu-node-17", "env": {"SHELL": "/bin/bash", "HOSTNAME": "gpu-node-17"}})
    return a


def build(**filters) -> ExportJob:
    job = export_request(actor=None, filters=filters, run_now=True)
    assert job.status == ExportJob.Status.DONE, job.error
    return job


def members(job) -> dict[str, bytes]:
    with zipfile.ZipFile(export_file(job)) as z:
        return {name.split("/", 1)[1]: z.read(name) for name in z.namelist()}


def jsonl(files, table):
    return [json.loads(line) for line in files[f"{table}.jsonl"].decode().splitlines()]


def every_byte(files) -> bytes:
    """Every file's bytes, plus the decoded contents of the (compressed) Parquet files."""
    out = []
    for name, data in files.items():
        out.append(data)
        if name.endswith(".parquet"):
            out.append(json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), ensure_ascii=False).encode())
    return b"\n".join(out)


@pytest.mark.django_db
def test_export_contains_none_of_the_planted_personal_data_and_keeps_the_commands():
    a = planted_attempt()
    files = members(build())
    blob = every_byte(files).lower()
    for secret in PLANTED:
        assert secret.lower().encode() not in blob, f"{secret!r} leaked into the export"
    commands = [c["command"] for c in jsonl(files, "commands")]
    assert commands == [
        "export OPENAI_API_KEY=<secret>",
        "scp results.tar <email>:/tmp/",
        "ssh <user>@<ip> -i /home/<user>/.ssh/id_ed25519",
        'curl -H "Authorization: Bearer <secret>" https://<host>:8080/health',
        "python train.py --lr 3e-4 --epochs 2",
        "ping -c1 <ip>",
    ]
    assert [c["cwd"] for c in jsonl(files, "commands")][:2] == ["/home/<user>", "/home/<user>/work"]
    cast = [n for n in files if n.startswith("recordings/")]
    assert len(cast) == 1
    text = files[cast[0]].decode()
    assert "export OPENAI_API_KEY=<secret>" in text
    assert "Hello <name> (<user>), you are <ip>" in text
    header = json.loads(text.splitlines()[0])
    assert header == {"version": 2, "width": 80, "height": 24}
    assert all(json.loads(line)[1] != "i" for line in text.splitlines()[1:]), "keyboard input is not exported"
    survey = {r["question_id"]: (r["answer"], r["answer_label"]) for r in jsonl(files, "survey_answers")}
    assert survey == {"score_matched_expectations": ("yes", None), "comments": ("Mail me: <email> — <name>", None),
                      "difficulty": ("4", "Hard")}
    entry = jsonl(files, "score_entries")[0]
    assert entry["message"] == "wrote /home/<user>/out.txt for <user>"
    assert entry["elapsed_seconds"] == 400 and entry["at_seconds"] == 400
    attempt_row = jsonl(files, "attempts")[0]
    assert attempt_row["started_month"] == "2026-03"
    assert attempt_row["final_normalized_score"] == pytest.approx(0.4)
    extend = [c for c in jsonl(files, "clock_events") if c["kind"] == "extend"]
    assert extend[0]["reason"] == "<name> asked from <ip>" and extend[0]["at_seconds"] == 3600 and extend[0]["by_staff"] is True
    (note,) = jsonl(files, "notes")
    assert note["text"] == "lr 3e-4 diverged on <host>\nexport OPENAI_API_KEY=<secret>\nask <email> (<name>)"
    assert (note["at_seconds"], note["elapsed_seconds"], note["by_staff"]) == (500, 500, False)
    assert a.pk  # the attempt's internal id is not the exported one
    assert attempt_row["attempt_id"].startswith("A-") and attempt_row["expert_id"].startswith("E-")


@pytest.mark.django_db
def test_pseudonyms_are_stable_under_one_key_and_differ_under_another():
    planted_attempt()
    with override_settings(EXPORT_PSEUDONYM_KEY="key-one-0123456789"):
        first = jsonl(members(build()), "attempts")[0]
        second = jsonl(members(build()), "attempts")[0]
    with override_settings(EXPORT_PSEUDONYM_KEY="key-two-9876543210"):
        other = jsonl(members(build()), "attempts")[0]
    assert first["expert_id"] == second["expert_id"] and first["attempt_id"] == second["attempt_id"]
    assert other["expert_id"] != first["expert_id"] and other["attempt_id"] != first["attempt_id"]


@pytest.mark.django_db
def test_manifest_lists_every_file_with_a_hash_that_verifies():
    planted_attempt()
    job = build()
    files = members(job)
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest["schema_version"] == "1.2"
    assert set(manifest["files"]) == set(files)
    for name, meta in manifest["files"].items():
        assert hashlib.sha256(files[name]).hexdigest() == meta["sha256"], name
        assert len(files[name]) == meta["bytes"]
    assert manifest["counts"]["commands"] == 6 and manifest["counts"]["attempts"] == 1
    for table in ("attempts", "score_entries", "clock_events", "commands", "survey_answers", "environments", "recordings"):
        assert {f"{table}.jsonl", f"{table}.csv", f"{table}.parquet"} <= set(files)
        assert pq.read_table(io.BytesIO(files[f"{table}.parquet"])).num_rows == manifest["counts"][table]
    assert "## commands" in files["README.md"].decode()
    assert hashlib.sha256(export_file(job).read_bytes()).hexdigest() == job.sha256


@pytest.mark.django_db
def test_an_invalidated_attempt_leaves_the_export_and_comes_back_when_revalidated():
    staff = factories.user(staff=True)
    keep = finished_attempt(slug="kernel")
    drop = finished_attempt(env=keep.environment)
    n = lambda **f: len(jsonl(members(build(**f)), "attempts"))  # noqa: E731
    assert n() == 2
    attempt_invalidate(attempt=drop, actor=staff, reason="infrastructure problem")
    assert n() == 1
    assert n(include_invalid=True) == 2
    attempt_revalidate(attempt=drop, actor=staff)
    assert n() == 2


@pytest.mark.django_db
def test_filters_by_environment_and_date_and_refuses_bad_ones():
    a = finished_attempt(slug="kernel")
    finished_attempt(slug="other")
    assert len(jsonl(members(build(environment="kernel")), "attempts")) == 1
    assert len(jsonl(members(build(since="2026-03-15")), "attempts")) == 0
    assert len(jsonl(members(build(since="2026-03-14", until="2026-03-14")), "attempts")) == 2
    assert a.pk
    with pytest.raises(ReviewActionError, match="“14/03/2026” is not a date"):
        export_request(actor=None, filters={"since": "14/03/2026"}, run_now=True)
    with pytest.raises(ReviewActionError, match="No environment “nope”"):
        export_request(actor=None, filters={"environment": "nope"}, run_now=True)


@pytest.mark.django_db
def test_a_job_runs_once():
    finished_attempt()
    job = build()
    from baseliner.review.bundle import export_build

    assert export_build(job_id=job.pk) is None  # a redelivered task does nothing


@pytest.mark.django_db
def test_management_command(capsys):
    finished_attempt(slug="kernel")
    call_command("export_baselines", "--environment", "kernel")
    out = capsys.readouterr().out
    assert "attempts: 1 rows" in out and ".zip" in out


@pytest.mark.slow
@pytest.mark.django_db
def test_recordings_are_processed_with_bounded_memory(tmp_path):
    """A long recording (≈ 14 MB) is rewritten and stitched line by line."""
    a = finished_attempt()
    rel = f"big-{a.pk}.cast"
    path = Path(settings.RECORDINGS_DIR) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write('{"version": 2, "width": 80, "height": 24}\n')
        line = "x" * 150
        for i in range(80_000):
            f.write(json.dumps([i * 0.1, "o", f"{line} {i}\r\n"]) + "\n")
    from baseliner.recording.models import Recording

    rec = Recording.objects.create(attempt=a, terminal="main", path=rel, started_at=a.started_at)
    tracemalloc.start()
    n = sum(1 for _ in casts.export_cast(rec, scrub=str))
    n += sum(1 for _ in casts.stitched_cast([rec]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    path.unlink()
    assert n == 2 * 80_001
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"


@pytest.mark.slow
def test_export_runs_as_a_celery_job_with_progress(client, worker):
    staff = factories.user(staff=True)
    finished_attempt(slug="kernel")
    client.force_login(staff)
    response = client.post("/review/exports/", {"environment": "kernel"})
    assert response.status_code == 302
    job = ExportJob.objects.get()
    deadline = time.monotonic() + 60
    seen = set()
    while time.monotonic() < deadline:
        body = client.get(f"/review/exports/{job.pk}.json").json()
        seen.add(body["status"])
        if body["status"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert body["status"] == "done", body
    assert body["progress"] == 100 and body["counts"]["attempts"] == 1
    download = client.get(body["download"])
    assert download.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
