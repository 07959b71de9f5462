"""
Settings for baseliner, read from environment variables (django-environ).

Every setting that an operator may change is read here, with its default and unit in the
comment beside it; README.md ("Configuration") lists them. The defaults are the *embedded*
configuration used by the README's first command: SQLite in ``var/`` and a Redis that the
run command starts itself. Production sets at least::

    BASELINER_PRODUCTION=1 SECRET_KEY=... BASELINER_FERNET_KEYS=... \
    DATABASE_URL=postgres://user@db/baseliner REDIS_URL=redis://redis:6379/0 \
    ALLOWED_HOSTS=baseliner.example.org
"""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("BASELINER_VAR_DIR", default=str(BASE_DIR / "var")))

VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional, never committed

# Production mode turns on every secure default and refuses the development secrets.
PRODUCTION = env.bool("BASELINER_PRODUCTION", default=False)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)

_DEV_SECRET = "dev-insecure-secret-key-change-me-in-production-0123456789abcdef"
SECRET_KEY = env.str("SECRET_KEY", default="" if PRODUCTION else _DEV_SECRET)
if PRODUCTION and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET):
    raise environ.ImproperlyConfigured("SECRET_KEY must be set in production")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "baseliner.accounts",
    "baseliner.catalog",
    "baseliner.attempts",
    "baseliner.machines",
    "baseliner.scoring",
    "baseliner.recording",
    "baseliner.surveys",
    "baseliner.audit",
    "baseliner.review",
    "baseliner.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "baseliner.web.middleware.ServiceUnavailableMiddleware",
    "baseliner.attempts.middleware.DeadlineMiddleware",
    # AxesMiddleware must stay last: it turns lockouts into a clear 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "baseliner.urls"
ASGI_APPLICATION = "baseliner.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# Embedded default: SQLite in var/ (WAL, immediate transactions, so the web server and
# the Celery worker can write side by side). Production: DATABASE_URL=postgres://...
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'baseliner.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "baseliner.postgres"  # the health check without a round trip
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache -------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that
        # channels_redis blocks in BZPOPMIN: an idle socket's consumer would crash on
        # the race. Reads may take longer than the blocking pop; connects stay short.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
            "capacity": 1500,
            "expiry": 30,
        },
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task is re-delivered if its worker dies before acknowledging it. Tasks that opt in to
# acks_late are written to be safe to run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
# Periodic work (Celery beat). Intervals in seconds.
CELERY_BEAT_SCHEDULE: dict = {
    "worker-heartbeat": {"task": "baseliner.worker_heartbeat", "schedule": 30.0},
    # Ends overdue attempts (within 30 s of the deadline), sends warnings, re-runs end steps.
    "attempts-sweep": {"task": "baseliner.attempts_sweep", "schedule": env.float("CLOCK_SWEEP_SECONDS", default=10.0)},
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Auth -----------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Brute-force protection: lock a username+IP pair after AXES_FAILURE_LIMIT failures for
# AXES_COOLOFF_MINUTES minutes.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("PROXY_COUNT", default=0)
INVITATION_VALID_DAYS = env.int("INVITATION_VALID_DAYS", default=14)

# --- Security headers (production) -------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)  # seconds
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a commitment for the whole domain; a lab opts in with SECURE_HSTS_PRELOAD=1.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=True) else None

from django.utils.csp import CSP  # noqa: E402

# Everything the pages load is bundled under static/ (no CDN). 'wasm-unsafe-eval' lets
# asciinema-player's WebAssembly parser run; nothing else evaluates strings.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE, CSP.WASM_UNSAFE_EVAL],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "worker-src": [CSP.SELF, "blob:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- baseliner's own settings -----------------------------------------------------------
# The web process's GIL switch interval (seconds; Python's default is 0.005). A web process
# runs its event loop beside threads (Django's sync views and ORM calls through asgiref, the
# paramiko transports' reader threads); with 5 ms the loop can wait up to 5 ms for the GIL
# behind each thread that holds it, which 200 typing experts see as echo latency. 0.2 ms, at
# N=200 on 2 cores (bench/RESULTS.md, "GIL switch interval"): echo p99 153-655 -> 97-174 ms
# over five alternated rounds; at N=400 (overloaded) no better and no worse within the spread.
# Set by baseliner/asgi.py, in web processes only.
WEB_GIL_SWITCH_INTERVAL = env.float("WEB_GIL_SWITCH_INTERVAL", default=0.0002)
# Where recordings (asciicast files), final-solution archives and exports are written.
RECORDINGS_DIR = env.path("RECORDINGS_DIR", default=VAR_DIR / "recordings")
# A recording still open whose file no live bridge has touched for this long (its web server
# was killed) is closed by a beat task (baseliner.recording.services.recording_close_orphans).
RECORDING_ORPHAN_SECONDS = env.float("RECORDING_ORPHAN_SECONDS", default=300.0)
RECORDING_HEARTBEAT_SECONDS = env.float("RECORDING_HEARTBEAT_SECONDS", default=30.0)  # how often a live bridge touches its file
CELERY_BEAT_SCHEDULE["recordings-close-orphans"] = {"task": "baseliner.recordings_close_orphans", "schedule": 60.0}
ARCHIVES_DIR = env.path("ARCHIVES_DIR", default=VAR_DIR / "archives")
EXPORTS_DIR = env.path("EXPORTS_DIR", default=VAR_DIR / "exports")
# The end of an attempt: cache folders (~/.cache, __pycache__, ...) bigger than this are left
# out of the final-solution archive (MB); an archive larger than ARCHIVE_MAX_MB (compressed) fails.
ARCHIVE_CACHE_LIMIT_MB = env.int("ARCHIVE_CACHE_LIMIT_MB", default=100)
ARCHIVE_MAX_MB = env.int("ARCHIVE_MAX_MB", default=4096)
# Survey answers: longest free-text answer accepted (characters).
SURVEY_ANSWER_MAX_CHARS = env.int("SURVEY_ANSWER_MAX_CHARS", default=10000)
# Folder of environment definitions loaded by `manage.py sync_environments`.
ENVIRONMENTS_DIR = env.path("ENVIRONMENTS_DIR", default=BASE_DIR / "environments")
# Snapshots of every loaded environment version (keyed by content hash), so an attempt on an
# older version still gets that version's files.
ENVIRONMENT_SNAPSHOTS_DIR = env.path("ENVIRONMENT_SNAPSHOTS_DIR", default=VAR_DIR / "environments")
# The URL machines use to reach the app (the `score` command posts to /api/machine/score).
BASELINER_PUBLIC_URL = env.str("BASELINER_PUBLIC_URL", default="http://127.0.0.1:8000")
# Most bytes of scorer output kept (the rest is discarded on the machine and the run is an error).
SCORING_OUTPUT_LIMIT_BYTES = env.int("SCORING_OUTPUT_LIMIT_BYTES", default=1 << 20)
# A scoring run still "running" this many seconds after its scorer's timeout lost its worker:
# the sweep (every SCORING_SWEEP_INTERVAL seconds) records it as an error entry.
SCORING_STALE_GRACE_SECONDS = env.int("SCORING_STALE_GRACE_SECONDS", default=300)
SCORING_SWEEP_INTERVAL = env.float("SCORING_SWEEP_INTERVAL", default=60.0)
CELERY_BEAT_SCHEDULE["score-runs-sweep"] = {"task": "baseliner.score_runs_sweep", "schedule": SCORING_SWEEP_INTERVAL}
# Fernet keys (comma-separated, newest first) that encrypt lease credentials at rest.
# The development default is derived from SECRET_KEY; production must set its own.
BASELINER_FERNET_KEYS = env.list("BASELINER_FERNET_KEYS", default=[])
if PRODUCTION and not BASELINER_FERNET_KEYS:
    raise environ.ImproperlyConfigured("BASELINER_FERNET_KEYS must be set in production")
# HMAC key for pseudonymous expert IDs in exports (two exports with one key agree).
EXPORT_PSEUDONYM_KEY = env.str("EXPORT_PSEUDONYM_KEY", default=SECRET_KEY)
# Public hosts that exports keep in commands and recordings (and their subdomains); every
# other host name is replaced by <host>. Comma-separated.
EXPORT_PUBLIC_HOSTS = env.list("EXPORT_PUBLIC_HOSTS", default=[
    "github.com", "githubusercontent.com", "pypi.org", "pythonhosted.org", "python.org", "pytorch.org",
    "huggingface.co", "nvidia.com", "ubuntu.com", "debian.org", "readthedocs.io", "wikipedia.org",
])
# Machine provider: dotted path or short name (local, ssh, ec2). See provisioning/base.py.
MACHINE_PROVIDER = env.str("MACHINE_PROVIDER", default="local")
# Dotted paths called at the end of machine preparation, in order, each as
# hook(lease=, client=<admin paramiko client>, environment=); a hook raises to fail it.
BASELINER_PREPARE_HOOKS: list[str] = env.list("BASELINER_PREPARE_HOOKS", default=[
    "baseliner.recording.machine.install_shell_integration",  # command log markers, tmux conf
    "baseliner.scoring.prepare.prepare_scoring",  # score/score_log commands, token, venv, METR install/start
])
# The local provider's loopback sshd (state dir: host key, config, authorized keys, pid).
LOCAL_SSHD_DIR = env.path("LOCAL_SSHD_DIR", default=VAR_DIR / "machines" / "local-sshd")
# Health checks: every LEASE_HEALTH_INTERVAL seconds; a lease is unhealthy after
# LEASE_HEALTH_FAILURES failed checks in a row, and torn down by the reaper after
# LEASE_UNREACHABLE_MINUTES without a good check.
LEASE_HEALTH_INTERVAL = env.float("LEASE_HEALTH_INTERVAL", default=30.0)  # seconds
LEASE_HEALTH_FAILURES = env.int("LEASE_HEALTH_FAILURES", default=3)
LEASE_UNREACHABLE_MINUTES = env.float("LEASE_UNREACHABLE_MINUTES", default=15.0)
# A lease still provisioning after this long (its worker died) is failed and torn down.
LEASE_PROVISION_TIMEOUT_MINUTES = env.float("LEASE_PROVISION_TIMEOUT_MINUTES", default=20.0)
LEASE_REAPER_INTERVAL = env.float("LEASE_REAPER_INTERVAL", default=60.0)  # seconds
# The reaper leaves an ended attempt's machine to its end steps (archive, final scoring) for
# up to this long after the end, then tears it down anyway.
LEASE_END_GRACE_MINUTES = env.float("LEASE_END_GRACE_MINUTES", default=60.0)
CELERY_BEAT_SCHEDULE["lease-health-checks"] = {"task": "machines.lease_health_check_all", "schedule": LEASE_HEALTH_INTERVAL}
CELERY_BEAT_SCHEDULE["lease-reaper"] = {"task": "machines.lease_reap", "schedule": LEASE_REAPER_INTERVAL}
# --- the ec2 provider (provisioning/ec2.py; launch profiles are edited in the admin) ---
# Names this installation in the tags of every instance it launches; two baseliner installs
# sharing an AWS account must use different ids, so neither ever touches the other's instances.
BASELINER_DEPLOYMENT_ID = env.str("BASELINER_DEPLOYMENT_ID", default="default")
# Another EC2 endpoint (a VPC endpoint; moto's server in tests). Empty: AWS's own.
EC2_ENDPOINT_URL = env.str("EC2_ENDPOINT_URL", default="")
# The reaper terminates a baseliner-tagged instance of this deployment whose lease is gone, or
# that outlived its attempt (or was launched for a lease that never recorded it) by this long.
EC2_REAPER_GRACE_MINUTES = env.float("EC2_REAPER_GRACE_MINUTES", default=15.0)
# Seconds between checks while waiting for an instance, its host key and SSH.
EC2_POLL_SECONDS = env.float("EC2_POLL_SECONDS", default=5.0)
# Tests only: reach every instance's SSH at this "host:port" (a loopback sshd) instead of its IP.
EC2_SSH_ENDPOINT_OVERRIDE = env.str("EC2_SSH_ENDPOINT_OVERRIDE", default="")
# Always scheduled (a lab that moved off ec2 still gets its leftovers reaped); it asks AWS
# nothing while no launch profile and no ec2 lease exist.
CELERY_BEAT_SCHEDULE["ec2-reaper"] = {"task": "machines.ec2_reap", "schedule": LEASE_REAPER_INTERVAL}
# Default time limit of an attempt when the environment sets none (seconds).
DEFAULT_TIME_LIMIT_SECONDS = env.int("DEFAULT_TIME_LIMIT_SECONDS", default=8 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}, "paramiko": {"level": "WARNING"}},
}
