"""Project-level guarantees: migrations, deploy checks, admin coverage, demo data, no torch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.management import call_command

from baseliner.catalog.models import Environment

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_with_production_settings_is_clean():
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env_extra={
            "BASELINER_PRODUCTION": "1",
            "SECRET_KEY": "x" * 30 + "-a-real-production-secret-key-with-entropy-1234567890",
            "BASELINER_FERNET_KEYS": "q9G0Xo5lq3L2Q5t7gVxRkO2l1Gm8zJz1Q1v3rV6cY0Q=",
            "ALLOWED_HOSTS": "baseliner.example.org",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", env_extra={"BASELINER_PRODUCTION": "1", "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


@pytest.mark.django_db
def test_no_missing_migrations():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_every_model_of_ours_has_an_admin():
    ours = [m for m in apps.get_models() if m.__module__.startswith("baseliner.")]
    missing = [m.__name__ for m in ours if m not in admin.site._registry]
    assert not missing, f"models without an admin: {missing}"


@pytest.mark.django_db
def test_every_admin_changelist_loads_for_a_superuser(client):
    from tests import factories

    factories.attempt()
    client.force_login(factories.user(superuser=True))
    for model in admin.site._registry:
        if not model.__module__.startswith("baseliner."):
            continue
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_every_add_form_the_admin_offers_answers_an_empty_save_with_a_form_error(client):
    """An "Add" link the admin shows must lead to a form that works: an empty save is told what
    is missing (it used to be a 500 for attempts and for the recorded command log, recordings
    and editor saves, which only the app itself writes and which staff now only view)."""
    from tests import factories

    client.force_login(factories.user(superuser=True))
    offered = []
    for model, model_admin in admin.site._registry.items():
        if not model.__module__.startswith("baseliner."):
            continue
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/add/"
        request = client.get(url).wsgi_request
        if not model_admin.has_add_permission(request):
            assert client.get(url).status_code == 403, url
            continue
        offered.append(model.__name__)
        response = client.post(url, {"_save": "Save"})
        assert response.status_code == 200 and b"errornote" in response.content, (url, response.status_code)
    for name in ("CommandRecord", "Recording", "EditorSave", "Attempt"):
        assert name not in offered
    assert "Assignment" in offered


@pytest.mark.django_db
def test_a_new_assignment_is_created_by_whoever_saves_it(client):
    from baseliner.attempts.models import Assignment
    from tests import factories

    staff = factories.user(superuser=True)
    other_staff = factories.user(superuser=True)
    expert, env = factories.user(), factories.environment()
    client.force_login(staff)
    page = client.get("/admin/attempts/assignment/add/").content.decode()
    assert 'name="created_by"' not in page  # not a choice that save would silently ignore
    client.post("/admin/attempts/assignment/add/",
                {"expert": expert.pk, "environment": env.pk, "created_by": other_staff.pk, "_save": "Save"})
    assert Assignment.objects.get(expert=expert).created_by == staff


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    from django.contrib.auth import get_user_model

    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)
    User = get_user_model()
    assert User.objects.get(username="admin").is_superuser
    expert = User.objects.get(username="expert")
    assert expert.check_password("expert-demo-pass")
    assert expert.attempts.count() == 1
    assert Environment.objects.filter(slug="demo").exists()


def test_the_web_app_never_imports_torch_or_triton():
    for path in (ROOT / "baseliner").rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "import triton" not in text, path
    reqs = (ROOT / "requirements.txt").read_text().lower()
    assert "torch" not in reqs.replace("torch/triton never", "") and "triton==" not in reqs


def test_templates_load_nothing_from_the_internet():
    import re

    for path in (ROOT / "templates").rglob("*.html"):
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', path.read_text()), path


@pytest.mark.parametrize("configured, expected", [(None, 0.0002), ("0.002", 0.002)])
def test_a_web_process_hands_the_gil_back_sooner_than_pythons_default(configured, expected):
    # What uvicorn does in each web process: import the ASGI application. With Python's 5 ms
    # the event loop waited behind sync threads: at N=200 echo p99 doubled (bench/RESULTS.md).
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "WEB_GIL_SWITCH_INTERVAL")}
    if configured:
        env["WEB_GIL_SWITCH_INTERVAL"] = configured
    code = "import sys; before = sys.getswitchinterval(); import baseliner.asgi; print(before, sys.getswitchinterval())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    before, after = map(float, result.stdout.split())
    assert before == pytest.approx(0.005) and after == pytest.approx(expected)
