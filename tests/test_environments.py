"""Environment folders: validation with clear errors, versioning, METR families, sync."""
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from baseliner.catalog.loader import EnvironmentFormatError, load_folder
from baseliner.catalog.models import Environment
from baseliner.catalog.services import environment_latest, environment_path, environment_sync
from tests import factories

ROOT = Path(__file__).resolve().parent.parent
TEST_ENVS = Path(__file__).resolve().parent / "environments"


@pytest.fixture
def envs(tmp_path):
    """A private ENVIRONMENTS_DIR with a copy of the demo environment."""
    root = tmp_path / "environments"
    root.mkdir()
    shutil.copytree(ROOT / "environments" / "demo", root / "demo")
    return root


def manifest(root: Path, text: str, name="demo") -> Path:
    path = root / name / "environment.yaml"
    path.write_text(text)
    return path


def test_the_shipped_environments_load():
    slugs = {spec.slug for folder in sorted((ROOT / "environments").iterdir()) if folder.is_dir() for spec in load_folder(folder)}
    assert {"demo", "prefix_sum"} <= slugs


def test_demo_manifest_becomes_an_environment():
    (spec,) = load_folder(ROOT / "environments" / "demo")
    assert spec.slug == "demo"
    f = spec.fields
    assert (f["direction"], f["aggregation"], f["time_limit_seconds"]) == ("lower", "best", 8 * 3600)
    assert f["y_start"] > f["y_ref"]
    assert f["instructions"].startswith("# Demo: make `count_primes` faster")
    assert f["scoring"]["command"] == "python3 score.py"


@pytest.mark.django_db
def test_sync_is_idempotent_and_a_changed_folder_becomes_a_new_version(envs):
    (env1, created), = environment_sync(root=envs)
    assert created and env1.version == 1
    assert environment_sync(root=envs) == [(env1, False)]
    attempt = factories.attempt(env=env1)

    (envs / "demo" / "reference" / "solve.py").write_text("# a changed reference\n")  # the reference is versioned too
    (env2, created), = environment_sync(root=envs)
    assert created and env2.version == 2 and env2.content_hash != env1.content_hash
    assert environment_latest(slug="demo") == env2
    attempt.refresh_from_db()
    assert attempt.environment == env1  # attempts keep the version they started on
    # Each version's files stay available for machines of attempts on it.
    assert (environment_path(environment=env1) / "reference" / "solve.py").read_text() != "# a changed reference\n"
    assert (environment_path(environment=env2) / "reference" / "solve.py").read_text() == "# a changed reference\n"


@pytest.mark.django_db
def test_a_removed_folder_is_deactivated(envs):
    environment_sync(root=envs)
    shutil.rmtree(envs / "demo")
    environment_sync(root=envs)
    assert environment_latest(slug="demo") is None
    assert Environment.objects.filter(slug="demo").exists()


@pytest.mark.parametrize(("change", "error"), [
    (("direction: lower", "direction: sideways"), "demo/environment.yaml: scoring.direction: must be one of 'higher', 'lower' (got 'sideways')"),
    (("  y_ref: 0.7\n", ""), "demo/environment.yaml: scoring.y_ref: is required"),
    (("y_ref: 0.7", "y_ref: 7.0"), "demo/environment.yaml: scoring.y_ref: Lower is better, so the reference (y_ref=7.0) must score below the start"),
    (("id: demo", "id: other"), "demo/environment.yaml: id: must equal the folder name 'demo' (got 'other')"),
    (("instructions: instructions.md", "instructions: ../../../../etc/passwd"), "demo/environment.yaml: instructions: '../../../../etc/passwd' points outside the environment folder"),
    (("instructions: instructions.md", "instructions: /etc/passwd"), "demo/environment.yaml: instructions: must be a relative path inside the folder"),
    (("time_limit: 8h", "time_limit: forever"), "demo/environment.yaml: time_limit: must be seconds or a duration like '8h' (got 'forever')"),
    (("timeout: 60", "timeout: -1"), "demo/environment.yaml: scoring.timeout: must be at least 1 (got -1)"),
    (("pause_policy: allowed", "pause_plicy: allowed"), "demo/environment.yaml: pause_plicy: unknown field"),
    (("title:", "title: !!python/object/apply:os.system ['touch /tmp/pwned']\nx:"), "demo/environment.yaml: not valid YAML (only plain YAML is accepted, no tags)"),
])
@pytest.mark.django_db
def test_a_bad_manifest_names_the_file_and_field_and_loads_nothing(envs, change, error):
    path = envs / "demo" / "environment.yaml"
    path.write_text(path.read_text().replace(*change, 1))
    with pytest.raises(EnvironmentFormatError) as exc:
        environment_sync(root=envs)
    assert error in str(exc.value)
    assert not Environment.objects.filter(slug="demo").exists()


@pytest.mark.django_db
def test_a_symbolic_link_in_a_folder_is_refused(envs):
    (envs / "demo" / "files" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(EnvironmentFormatError, match="files/passwd: symbolic links are not allowed"):
        environment_sync(root=envs)


@pytest.mark.django_db
def test_sync_environments_command_reports_the_error(envs, settings):
    settings.ENVIRONMENTS_DIR = envs
    manifest(envs, (envs / "demo" / "environment.yaml").read_text().replace("aggregation: best", "aggregation: median"))
    with pytest.raises(CommandError, match="scoring.aggregation: must be one of 'best', 'last' \\(got 'median'\\)"):
        call_command("sync_environments")


@pytest.mark.django_db
def test_a_metr_family_becomes_one_environment_per_task(tmp_path):
    shutil.copytree(TEST_ENVS / "word_count", tmp_path / "word_count")
    results = environment_sync(root=tmp_path)
    envs = {e.slug: e for e, _ in results}
    assert set(envs) == {"word_count-small", "word_count-large"}
    small, large = envs["word_count-small"], envs["word_count-large"]
    assert small.source == "metr" and small.metr_task_name == "small"
    assert small.instructions.startswith("/home/agent/words.txt holds about 50 words.")
    assert (small.y_start, small.y_ref, small.direction, small.time_limit_seconds) == (0.0, 1.0, "higher", 3600)
    assert large.title == "Count many words"
    assert small.score_visible_to_expert is True and large.score_visible_to_expert is False  # manifest's visible_to_agent
    assert small.resources == {"cpus": 1, "memory_gb": 1.0}
    assert not list((tmp_path / "word_count").rglob("__pycache__"))  # the family's code ran without writing into the folder


def test_a_metr_family_without_an_overlay_is_refused(tmp_path):
    shutil.copytree(TEST_ENVS / "word_count", tmp_path / "word_count")
    (tmp_path / "word_count" / "baseliner.yaml").unlink()
    with pytest.raises(EnvironmentFormatError, match="word_count/baseliner.yaml: is missing"):
        load_folder(tmp_path / "word_count")


def test_a_broken_metr_family_is_reported(tmp_path):
    shutil.copytree(TEST_ENVS / "word_count", tmp_path / "word_count")
    (tmp_path / "word_count" / "word_count.py").write_text("import no_such_module\n")
    with pytest.raises(EnvironmentFormatError, match="word_count.py: TaskFamily.get_tasks: .*No module named 'no_such_module'"):
        load_folder(tmp_path / "word_count")


@pytest.mark.django_db
def test_seed_demo_uses_the_demo_folder():
    call_command("seed_demo", verbosity=0)
    env = Environment.objects.get(slug="demo")
    assert env.source_path == "demo" and env.title == "Demo: make count_primes faster"
