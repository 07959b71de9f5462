"""Settings for the test suite: the machine's real PostgreSQL and Redis (see scripts/test.sh).

Environment variables still win, so CI or a developer can point the suite elsewhere.
"""
import os
from pathlib import Path

import environ

# A developer's .env (never committed) may point the suite at another database or Redis db.
environ.Env.read_env(Path(__file__).resolve().parent.parent / ".env", overwrite=False)
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/baseliner")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("BASELINER_VAR_DIR", "/tmp/baseliner-test-var")
# Playwright's sync API keeps an event loop on the main thread; the tests' own ORM calls are
# still synchronous and single-threaded.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from .settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
AXES_FAILURE_LIMIT = 3
# Close connections after each request/task so test databases can be dropped at the end.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
