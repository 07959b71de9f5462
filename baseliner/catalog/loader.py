"""
Reading environment folders: validation, content hashes and snapshots. Writes to the
database are in ``services.py``; this module only reads files and says what is wrong.

Two formats live under ``settings.ENVIRONMENTS_DIR``:

*Native* (``environment.yaml``)::

    environments/demo/
      environment.yaml   # the manifest (below)
      instructions.md    # shown to the expert
      files/             # starting files -> the expert's home
      scoring/           # scorer + protected inputs -> protected_dir (never readable by the expert)
      reference/         # hidden reference solution: never leaves the app host
      requirements.txt   # optional machine-side Python packages

    id: demo                       # the slug; must equal the folder name
    title: "Demo: make solve.py faster"
    instructions: instructions.md  # a file inside the folder
    rules: rules.md                # optional
    time_limit: 8h                 # seconds, or "90m" / "8h"
    resources: {gpus: 0, cpus: 1, memory_gb: 2, disk_gb: 1}
    pause_policy: none             # or allowed
    python: python3                # optional: interpreter for requirements.txt's venv
    scoring:
      command: '"$BASELINER_PYTHON" score.py'   # run in protected_dir as the scorer user
      timeout: 120                 # seconds
      direction: lower             # or higher
      aggregation: best            # or last
      y_start: 0.0
      y_ref: -2.0
      visible_to_expert: true      # whether the expert sees raw scores
      counts_against_clock: true   # false: each scoring run's time is given back to the clock

*METR Task Standard family* (``<family>.py`` defining ``TaskFamily`` + ``manifest.yaml``),
loaded unmodified; baseliner's additions (normalization constants, direction, time limit)
come from an overlay ``baseliner.yaml`` beside it, per task under ``tasks:``. Each task becomes
an environment with slug ``<family>-<task>``. The task list and instructions are read by
running the family's own code through ``taskhelper.py`` in a subprocess (never imported
into the web app).

Every error is an ``EnvironmentFormatError`` naming the file and the field. Manifests are
read with ``yaml.safe_load`` (no tags, no objects); every path a manifest names must resolve
inside its folder, and the folder may not contain symbolic links (a link could smuggle a
file from the app host onto a machine).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

NATIVE_MANIFEST = "environment.yaml"
METR_MANIFEST = "manifest.yaml"
METR_OVERLAY = "baseliner.yaml"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".DS_Store"}
TASKHELPER = Path(__file__).resolve().parent.parent / "scoring" / "machine" / "taskhelper.py"


class EnvironmentFormatError(ValueError):
    """A folder that cannot be loaded. ``str()`` names the file and the field."""

    def __init__(self, path: Path | str, field_name: str | None, message: str):
        self.path, self.field_name = str(path), field_name
        super().__init__(f"{path}: {field_name + ': ' if field_name else ''}{message}")


@dataclass
class EnvironmentSpec:
    """One environment as read from a folder, ready to become an Environment row."""

    slug: str
    folder: Path
    content_hash: str  # this environment's version identity
    folder_hash: str  # the folder's hash: the snapshot key (shared by a METR family's tasks)
    fields: dict = field(default_factory=dict)


# --- small validators -------------------------------------------------------------------

def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EnvironmentFormatError(path, None, f"not valid YAML (only plain YAML is accepted, no tags): {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvironmentFormatError(path, None, f"cannot be read: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EnvironmentFormatError(path, None, "must be a mapping of fields")
    return data


def _inside(folder: Path, relative: str, path: Path, field_name: str) -> Path:
    """``folder/relative``, refused unless it resolves inside ``folder``."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative):
        raise EnvironmentFormatError(path, field_name, f"must be a relative path inside the folder (got {relative!r})")
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise EnvironmentFormatError(path, field_name, f"{relative!r} points outside the environment folder")
    return target


def _number(data: dict, key: str, path: Path, field_name: str, *, required: bool = True, default=None,
            minimum: float | None = None) -> float | None:
    value = data.get(key, default)
    if value is None:
        if required:
            raise EnvironmentFormatError(path, field_name, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EnvironmentFormatError(path, field_name, f"must be a finite number (got {value!r})")
    if minimum is not None and value < minimum:
        raise EnvironmentFormatError(path, field_name, f"must be at least {minimum} (got {value!r})")
    return float(value)


def _choice(data: dict, key: str, choices: tuple, path: Path, field_name: str, default: str) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise EnvironmentFormatError(path, field_name, f"must be one of {', '.join(map(repr, choices))} (got {value!r})")
    return value


def _bool(data: dict, key: str, path: Path, field_name: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise EnvironmentFormatError(path, field_name, f"must be true or false (got {value!r})")
    return value


def parse_duration(value, path: Path, field_name: str) -> int:
    """Seconds from 28800, "8h", "90m", "45s" or "1h30m"."""
    if isinstance(value, bool):
        raise EnvironmentFormatError(path, field_name, f"must be seconds or a duration like '8h' (got {value!r})")
    if isinstance(value, (int, float)) and value > 0:
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*", value)
        if m and any(m.groups()):
            seconds = int(m.group(1) or 0) * 3600 + int(m.group(2) or 0) * 60 + int(m.group(3) or 0)
            if seconds > 0:
                return seconds
    raise EnvironmentFormatError(path, field_name, f"must be seconds or a duration like '8h' (got {value!r})")


def _resources(data, path: Path, field_name: str = "resources") -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EnvironmentFormatError(path, field_name, "must be a mapping like {gpus: 1, cpus: 8, memory_gb: 64}")
    out = {}
    for key in ("gpus", "cpus", "memory_gb", "disk_gb"):
        if key in data:
            out[key] = _number(data, key, path, f"{field_name}.{key}", minimum=0)
            if key in ("gpus", "cpus"):
                out[key] = int(out[key])
    unknown = set(data) - {"gpus", "cpus", "memory_gb", "disk_gb", "gpu_model"}
    if unknown:
        raise EnvironmentFormatError(path, f"{field_name}.{sorted(unknown)[0]}", "unknown resource (known: gpus, cpus, memory_gb, disk_gb, gpu_model)")
    if "gpu_model" in data:
        out["gpu_model"] = str(data["gpu_model"])
    return out


def _scoring(data, path: Path, *, need_command: bool) -> dict:
    from baseliner.scoring.normalization import NormalizationError, validate_constants

    if not isinstance(data, dict):
        raise EnvironmentFormatError(path, "scoring", "is required: a mapping with command, timeout, direction, y_start, y_ref")
    out = {
        "timeout": int(_number(data, "timeout", path, "scoring.timeout", required=False, default=600, minimum=1)),
        "direction": _choice(data, "direction", ("higher", "lower"), path, "scoring.direction", "higher"),
        "aggregation": _choice(data, "aggregation", ("best", "last"), path, "scoring.aggregation", "best"),
        "y_start": _number(data, "y_start", path, "scoring.y_start"),
        "y_ref": _number(data, "y_ref", path, "scoring.y_ref"),
        "visible_to_expert": _bool(data, "visible_to_expert", path, "scoring.visible_to_expert", True),
        "counts_against_clock": _bool(data, "counts_against_clock", path, "scoring.counts_against_clock", True),
        "output_limit_bytes": int(_number(data, "output_limit_bytes", path, "scoring.output_limit_bytes", required=False,
                                          default=1 << 20, minimum=1024)),
        "provisional": _bool(data, "provisional", path, "scoring.provisional", False),
    }
    if need_command:
        command = data.get("command")
        if not isinstance(command, str) or not command.strip():
            raise EnvironmentFormatError(path, "scoring.command", "is required: the command that runs the scorer")
        out["command"] = command
    try:
        validate_constants(y_start=out["y_start"], y_ref=out["y_ref"], direction=out["direction"])
    except NormalizationError as exc:
        raise EnvironmentFormatError(path, "scoring.y_ref", str(exc)) from None
    return out


# --- hashing and snapshots --------------------------------------------------------------

def _walk(folder: Path):
    """Every file under ``folder`` in a stable order; refuses symbolic links."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_NAMES)
        for name in dirs:
            if (Path(root) / name).is_symlink():
                raise EnvironmentFormatError(Path(root) / name, None, "symbolic links are not allowed in an environment folder")
        for name in sorted(files):
            p = Path(root) / name
            if name in SKIPPED_NAMES or name.endswith(".pyc"):
                continue
            if p.is_symlink():
                raise EnvironmentFormatError(p, None, "symbolic links are not allowed in an environment folder")
            yield p


def content_hash(folder: Path, *, extra: str = "") -> str:
    """SHA-256 over every file's relative path and bytes, the reference solution included
    (a changed reference changes y_ref's meaning, so it must make a new version too)."""
    h = hashlib.sha256(extra.encode())
    for p in _walk(folder):
        rel = p.relative_to(folder).as_posix()
        h.update(f"\0{rel}\0{p.stat().st_size}\0".encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def snapshot(folder: Path, digest: str, snapshots_dir: Path) -> Path:
    """Copy ``folder`` to ``snapshots_dir/<digest>`` once, so an attempt on an old version
    still gets that version's files after the folder changed."""
    target = snapshots_dir / digest
    if target.is_dir():
        return target
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    tmp = snapshots_dir / f".{digest}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(folder, tmp, symlinks=True, ignore=shutil.ignore_patterns(*SKIPPED_NAMES, "*.pyc"))
    os.replace(tmp, target)
    return target


# --- the two formats ---------------------------------------------------------------------

def load_native(folder: Path) -> EnvironmentSpec:
    path = folder / NATIVE_MANIFEST
    data = _read_yaml(path)
    slug = data.get("id")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise EnvironmentFormatError(path, "id", f"must be a lowercase slug (letters, digits, - and _), got {slug!r}")
    if slug != folder.name:
        raise EnvironmentFormatError(path, "id", f"must equal the folder name {folder.name!r} (got {slug!r})")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise EnvironmentFormatError(path, "title", "is required")
    instructions_file = _inside(folder, data.get("instructions", "instructions.md"), path, "instructions")
    if not instructions_file.is_file():
        raise EnvironmentFormatError(path, "instructions", f"file {instructions_file.name!r} does not exist")
    rules = ""
    if data.get("rules") is not None:
        rules_file = _inside(folder, data["rules"], path, "rules")
        if not rules_file.is_file():
            raise EnvironmentFormatError(path, "rules", f"file {rules_file.name!r} does not exist")
        rules = rules_file.read_text(encoding="utf-8")
    for sub in ("files", "scoring", "reference"):
        p = folder / sub
        if p.exists() and not p.is_dir():
            raise EnvironmentFormatError(p, None, "must be a folder")
    known = {"id", "version", "title", "instructions", "rules", "time_limit", "resources", "pause_policy", "scoring", "python"}
    unknown = set(data) - known
    if unknown:
        raise EnvironmentFormatError(path, sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(known))})")
    scoring = _scoring(data.get("scoring"), path, need_command=True)
    python = data.get("python", "python3")
    if not isinstance(python, str) or not re.fullmatch(r"[A-Za-z0-9_./-]+", python):
        raise EnvironmentFormatError(path, "python", f"must be an interpreter name or path (got {python!r})")
    scoring["python"] = python
    requirements = folder / "requirements.txt"
    if requirements.exists():
        scoring["requirements"] = requirements.read_text(encoding="utf-8")
    digest = content_hash(folder)
    return EnvironmentSpec(
        slug=slug,
        folder=folder,
        content_hash=digest,
        folder_hash=digest,
        fields=_fields(
            title=title.strip(),
            instructions=instructions_file.read_text(encoding="utf-8"),
            rules=rules,
            source="native",
            metr_task_name="",
            time_limit_seconds=parse_duration(data.get("time_limit", "8h"), path, "time_limit"),
            resources=_resources(data.get("resources"), path),
            pause_policy=_choice(data, "pause_policy", ("none", "allowed"), path, "pause_policy", "none"),
            scoring=scoring,
            manifest=data,
        ),
    )


def _fields(*, scoring: dict, **rest) -> dict:
    return {
        **rest,
        "scoring": scoring,
        "scoring_timeout_seconds": scoring["timeout"],
        "scoring_counts_against_clock": scoring["counts_against_clock"],
        "score_visible_to_expert": scoring["visible_to_expert"],
        "direction": scoring["direction"],
        "aggregation": scoring["aggregation"],
        "y_start": scoring["y_start"],
        "y_ref": scoring["y_ref"],
    }


def run_taskhelper_locally(folder: Path, operation: str, *, task: str = "", timeout: float = 60) -> dict:
    """Run the family's code through our task helper in a subprocess on the app host (only
    the read-only ``get_tasks`` operation is ever run here; install/start/score run on the
    machine)."""
    family = folder.name
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    try:
        proc = subprocess.run([sys.executable, str(TASKHELPER), family, task, operation], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EnvironmentFormatError(folder / f"{family}.py", "TaskFamily.get_tasks", f"did not answer within {timeout:.0f} s") from None
    from baseliner.scoring.machine.protocol import ProtocolError, parse_result

    try:
        return parse_result(proc.stdout)
    except ProtocolError as exc:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise EnvironmentFormatError(folder / f"{family}.py", f"TaskFamily.{operation}",
                                     f"{exc} (exit {proc.returncode}): {' | '.join(tail)}") from None


def load_metr_family(folder: Path) -> list[EnvironmentSpec]:
    family = folder.name
    manifest_path = folder / METR_MANIFEST
    manifest = _read_yaml(manifest_path) if manifest_path.exists() else {}
    overlay_path = folder / METR_OVERLAY
    if not overlay_path.exists():
        raise EnvironmentFormatError(overlay_path, None, "is missing: a METR family needs a baseliner.yaml overlay with y_start, y_ref and direction")
    overlay = _read_yaml(overlay_path)
    info = run_taskhelper_locally(folder, "get_tasks")
    tasks = info.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise EnvironmentFormatError(folder / f"{family}.py", "TaskFamily.get_tasks", "returned no tasks")
    digest_base = content_hash(folder)
    overlay_tasks = overlay.get("tasks") or {}
    if not isinstance(overlay_tasks, dict):
        raise EnvironmentFormatError(overlay_path, "tasks", "must be a mapping of task name to settings")
    for name in overlay_tasks:
        if name not in tasks:
            raise EnvironmentFormatError(overlay_path, f"tasks.{name}", f"is not a task of {family} (tasks: {', '.join(sorted(tasks))})")
    specs = []
    for task, task_info in sorted(tasks.items()):
        slug = f"{family}-{task}".lower().replace(".", "-")
        if not SLUG_RE.match(slug):
            raise EnvironmentFormatError(folder / f"{family}.py", "TaskFamily.get_tasks", f"task name {task!r} does not make a valid slug")
        settings = {**{k: v for k, v in overlay.items() if k != "tasks"}, **(overlay_tasks.get(task) or {})}
        where = overlay_path if task not in overlay_tasks else f"{overlay_path} (tasks.{task})"
        scoring = _scoring(settings, Path(str(where)), need_command=False)
        task_manifest = (manifest.get("tasks") or {}).get(task) or {}
        resources = task_manifest.get("resources") or manifest.get("resources") or {}
        scoring_meta = task_manifest.get("scoring") or manifest.get("scoring") or {}
        if "visible_to_agent" in scoring_meta:
            scoring["visible_to_expert"] = bool(scoring_meta["visible_to_agent"])
        scoring["metr"] = {"family": family, "task": task, "permissions": task_info.get("permissions", [])}
        metr_resources = {}
        if isinstance(resources, dict):
            if "gpu" in resources and isinstance(resources["gpu"], dict):
                metr_resources["gpus"] = int(resources["gpu"].get("count_range", [0])[0] or 0)
                if resources["gpu"].get("model"):
                    metr_resources["gpu_model"] = str(resources["gpu"]["model"])
            if "cpus" in resources:
                metr_resources["cpus"] = int(resources["cpus"])
            if "memory_gb" in resources:
                metr_resources["memory_gb"] = float(resources["memory_gb"])
            if "storage_gb" in resources:
                metr_resources["disk_gb"] = float(resources["storage_gb"])
        title = settings.get("title") or f"{family}: {task}"
        specs.append(EnvironmentSpec(
            slug=slug,
            folder=folder,
            content_hash=hashlib.sha256(f"{digest_base}:{task}".encode()).hexdigest(),
            folder_hash=digest_base,
            fields=_fields(
                title=str(title),
                instructions=str(task_info.get("instructions", "")),
                rules=str(settings.get("rules", "")),
                source="metr",
                metr_task_name=task,
                time_limit_seconds=parse_duration(settings.get("time_limit", "8h"), overlay_path, "time_limit"),
                resources=_resources(metr_resources, manifest_path),
                pause_policy=_choice(settings, "pause_policy", ("none", "allowed"), overlay_path, "pause_policy", "none"),
                scoring=scoring,
                manifest={"manifest": manifest, "overlay": overlay, "task": task},
            ),
        ))
    return specs


def load_folder(folder: Path) -> list[EnvironmentSpec]:
    """Every environment defined by ``folder`` (one for native, one per task for METR)."""
    if (folder / NATIVE_MANIFEST).exists():
        return [load_native(folder)]
    if (folder / f"{folder.name}.py").exists():
        return load_metr_family(folder)
    raise EnvironmentFormatError(folder, None, f"is neither a baseliner environment ({NATIVE_MANIFEST}) nor a METR task family ({folder.name}.py)")


def environment_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise EnvironmentFormatError(root, None, "is not a folder")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")) and p.name not in SKIPPED_NAMES)


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
