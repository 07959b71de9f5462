"""Small builders for test data. Each goes through the same services the app uses."""
import itertools

from django.contrib.auth import get_user_model

from baseliner.attempts.services import assignment_create
from baseliner.catalog.models import Environment

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def user(*, username: str | None = None, staff: bool = False, superuser: bool = False, password: str = PASSWORD):
    User = get_user_model()
    username = username or f"user{next(_seq)}"
    u = User.objects.create_user(username=username, email=f"{username}@example.org", password=password,
                                 is_staff=staff or superuser, is_superuser=superuser)
    if staff and not superuser:
        from django.contrib.auth.models import Permission

        u.user_permissions.add(*Permission.objects.filter(content_type__app_label="attempts"))
    return u


def environment(**overrides) -> Environment:
    n = next(_seq)
    fields = dict(
        slug=f"env{n}", version=1, content_hash=f"hash{n}", title=f"Environment {n}", instructions="# Do the thing\nCarefully.",
        time_limit_seconds=8 * 3600, direction="higher", aggregation="best", y_start=0.0, y_ref=1.0,
    )
    fields.update(overrides)
    return Environment.objects.create(**fields)


def attempt(*, expert=None, env=None, **env_overrides):
    expert = expert or user()
    env = env or environment(**env_overrides)
    assignment = assignment_create(expert=expert, environment=env)
    return assignment.attempts.get()
