"""
Writes on environments: loading folders into versioned rows, and which version an attempt gets.

A folder whose content hash is new becomes a new version (``version + 1``); an unchanged
folder is a no-op, so ``sync_environments`` is idempotent. Old versions stay in the database
(attempts point at the version they started on) and on disk as snapshots under
``ENVIRONMENT_SNAPSHOTS_DIR/<folder hash>``, so preparing a machine for an old version copies
that version's files, never the folder's newer ones.
"""
from pathlib import Path

from django.conf import settings
from django.db import transaction

from . import loader
from .loader import EnvironmentFormatError, EnvironmentSpec
from .models import Environment


def _snapshots_dir() -> Path:
    return Path(settings.ENVIRONMENT_SNAPSHOTS_DIR)


def environment_upsert(*, spec: EnvironmentSpec, source_path: str) -> tuple[Environment, bool]:
    """The Environment row for ``spec``: the newest one if its content is unchanged, else a
    new version. Returns (environment, created)."""
    loader.snapshot(spec.folder, spec.folder_hash, _snapshots_dir())
    with transaction.atomic():
        newest = Environment.objects.select_for_update().filter(slug=spec.slug).order_by("-version").first()
        if newest is not None and newest.content_hash == spec.content_hash:
            if not newest.is_active:
                newest.is_active = True
                newest.save(update_fields=["is_active"])
            return newest, False
        fields = dict(spec.fields)
        fields["scoring"] = {**fields["scoring"], "folder_hash": spec.folder_hash}
        env = Environment(
            slug=spec.slug,
            version=(newest.version + 1) if newest else 1,
            content_hash=spec.content_hash,
            source_path=source_path,
            **fields,
        )
        env.full_clean()
        env.save()
    return env, True


def environment_sync(*, root: Path | None = None) -> list[tuple[Environment, bool]]:
    """Validate every folder under ``root`` (default ENVIRONMENTS_DIR), then load them. All
    folders are validated before anything is written: one bad folder loads nothing and raises
    EnvironmentFormatError naming the file and field. Slugs whose folder disappeared are
    deactivated (their rows stay for the attempts that used them)."""
    root = Path(root or settings.ENVIRONMENTS_DIR)
    specs: list[EnvironmentSpec] = []
    for folder in loader.environment_folders(root):
        specs.extend(loader.load_folder(folder))
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec.slug in seen:
            raise EnvironmentFormatError(spec.folder, "id", f"{spec.slug!r} is already defined by {seen[spec.slug]}")
        seen[spec.slug] = spec.folder
    results = [environment_upsert(spec=s, source_path=s.folder.name) for s in specs]
    Environment.objects.filter(is_active=True).exclude(source_path="").exclude(slug__in=list(seen)).update(is_active=False)
    return results


def environment_latest(*, slug: str) -> Environment | None:
    """The newest active version of ``slug``: what an attempt starting now should run on."""
    return Environment.objects.filter(slug=slug, is_active=True).order_by("-version").first()


def environment_path(*, environment: Environment) -> Path | None:
    """The folder with ``environment``'s files *for its version* (files/, scoring/, ...): the
    snapshot taken when that version was loaded. None for an environment not loaded from a
    folder (e.g. created in the admin or by tests)."""
    folder_hash = (environment.scoring or {}).get("folder_hash")
    if folder_hash and (_snapshots_dir() / folder_hash).is_dir():
        return _snapshots_dir() / folder_hash
    return None
