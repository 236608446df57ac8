"""Settings for reviewdesk; everything a deployment changes comes from the environment."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime files (SQLite databases, the private Redis socket, logs) live here, never in git.
VAR_DIR = Path(os.environ.get("REVIEWDESK_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _env_bool("REVIEWDESK_DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when REVIEWDESK_DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "axes",
    "reviewdesk",
]

MIDDLEWARE = [
    # First: load balancers' /healthz and /readyz, before host checks and HTTPS redirects.
    "reviewdesk.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from the one ASGI process (Daphne), with or without DEBUG.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "reviewdesk.middleware.HtmxLoginRedirectMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "reviewdesk.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "reviewdesk.urls"
ASGI_APPLICATION = "reviewdesk.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite by default, PostgreSQL via DATABASE_URL. LangGraph's checkpointer follows this choice
# (see reviewdesk/checkpoint.py).
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'reviewdesk.sqlite3'}"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process, so a worker with many threads needs few connections: a run gives its
    # connection back while the graph waits on a model (engine/runs.py).
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("REVIEWDESK_DB_POOL_SIZE", "16")),
        "timeout": 30,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE makes every transaction take SQLite's write lock up front, so
        # select_for_update() (a no-op on SQLite) still serialises a thread's runs and answers.
        "transaction_mode": "IMMEDIATE",
        "timeout": 60,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Keep connections: opening one costs a file open and the PRAGMAs each time, and Celery
    # closes non-persistent ones after every task (SQLite holds no lock while idle).
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "600"))
    # A file, not :memory:, so the Celery worker and Daphne started by the tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-reviewdesk.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# django-axes first: it refuses a locked-out login before any backend checks the password,
# so even the right password does not get in during the cool-off.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Lock out a username from one IP address after this many failed logins, for this long. By
# username *and* address: a guesser elsewhere cannot lock a reviewer out of their own desk.
AXES_FAILURE_LIMIT = int(os.environ.get("REVIEWDESK_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("REVIEWDESK_LOGIN_COOLOFF", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "reviewdesk.views.accounts.login_locked_out"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reviewdesk:queue"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing root before collectstatic

# --- Redis: Celery broker and Channels layer ---------------------------------------------------
# REDIS_URL if set; otherwise the private Redis that `make run` / `make test` start on a socket.
REDIS_URL = os.environ.get("REDIS_URL", f"unix://{VAR_DIR / 'redis.sock'}")


def _celery_redis_url(url: str) -> str:
    return "redis+socket://" + url.removeprefix("unix://") if url.startswith("unix://") else url


CELERY_BROKER_URL = _celery_redis_url(REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Graph steps mostly wait on models and tools (I/O), so the default is a threads pool: one
# process whose many threads share one checkpointer connection pool, and whose async graphs
# share one event loop. Prefork ("prefork", one process per slot) suits CPU-bound graphs.
CELERY_WORKER_POOL = os.environ.get("REVIEWDESK_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = int(
    os.environ.get(
        "REVIEWDESK_WORKER_CONCURRENCY",
        "64" if CELERY_WORKER_POOL == "threads" else str(os.cpu_count() or 2),
    )
)
CELERY_BEAT_SCHEDULE = {
    "reconcile-threads": {
        "task": "reviewdesk.tasks.threads_reconcile",
        "schedule": float(os.environ.get("REVIEWDESK_RECONCILE_INTERVAL", "10")),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    # redis-py 8 raises instead of waiting once its pool is full: size it for
                    # many sockets.
                    "max_connections": 1000,
                    # An idle consumer blocks in BZPOPMIN for 5 s (RedisChannelLayer.
                    # brpop_timeout); redis-py's default socket timeout is also 5 s, so idle
                    # sockets raised TimeoutError and Daphne closed them with 1011 every ~6 s.
                    # Keep the read timeout well above the blocking time (a stalled Redis still
                    # surfaces, after 15 s).
                    "socket_timeout": 15,
                }
            ],
            "prefix": os.environ.get("REVIEWDESK_CHANNEL_PREFIX", "reviewdesk"),
            # A process's queue hub receives every queue's rows for all its pages (consumers.py).
            "channel_capacity": {"deskhub.*": 5000},
        },
    }
}

# --- reviewdesk --------------------------------------------------------------------------------
# Extra graphs beyond the modules of graphs/: {"name": "package.module:attribute"}, as JSON.
REVIEWDESK_GRAPHS: dict[str, str] = json.loads(os.environ.get("REVIEWDESK_GRAPHS", "{}"))
REVIEWDESK_GRAPHS_PACKAGE = os.environ.get("REVIEWDESK_GRAPHS_PACKAGE", "graphs")
# Threads left queued/running this long (seconds) by a dead worker are re-enqueued.
REVIEWDESK_STALE_AFTER = float(os.environ.get("REVIEWDESK_STALE_AFTER", "30"))
# A thread whose run keeps killing its worker is failed after this many attempts.
REVIEWDESK_MAX_ATTEMPTS = int(os.environ.get("REVIEWDESK_MAX_ATTEMPTS", "5"))
# Largest accepted answer, in bytes of JSON.
REVIEWDESK_MAX_ANSWER_BYTES = int(os.environ.get("REVIEWDESK_MAX_ANSWER_BYTES", str(64 * 1024)))
# Largest accepted thread input, in bytes of JSON.
REVIEWDESK_MAX_INPUT_BYTES = int(os.environ.get("REVIEWDESK_MAX_INPUT_BYTES", str(256 * 1024)))
# Types (besides those graph state schemas name) the checkpointer may rebuild from checkpoints:
# comma-separated "package.module.Class".
REVIEWDESK_CHECKPOINT_ALLOWED_TYPES = [
    t for t in os.environ.get("REVIEWDESK_CHECKPOINT_ALLOWED_TYPES", "").split(",") if t.strip()
]
# Deepest nesting of lists/objects accepted in answers and inputs. LangGraph's checkpoint
# serialiser fails past 255 levels (a thread input fails from 253 on: the checkpoint adds its
# own); 100 leaves room for graphs that nest what they receive inside their state.
REVIEWDESK_MAX_JSON_DEPTH = int(os.environ.get("REVIEWDESK_MAX_JSON_DEPTH", "100"))
# Workbench: a claim on an item lasts this long (seconds) unless its page renews it; an open
# item page renews claims and presence every REVIEWDESK_HEARTBEAT seconds, and a viewer not
# heard from for 2.5 heartbeats is no longer shown as viewing.
REVIEWDESK_CLAIM_TTL = float(os.environ.get("REVIEWDESK_CLAIM_TTL", "600"))
REVIEWDESK_HEARTBEAT = float(os.environ.get("REVIEWDESK_HEARTBEAT", "30"))
# Rows per page of the queue's views.
REVIEWDESK_PAGE_SIZE = int(os.environ.get("REVIEWDESK_PAGE_SIZE", "50"))

# --- Mail (password reset) ---------------------------------------------------------------------
# SMTP when EMAIL_HOST is set; the console in development; otherwise no mail at all, and then
# password reset is hidden (its pages 404) rather than "succeeding" with nothing sent.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 10  # seconds: a stuck mail server must not hold a request forever
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "reviewdesk@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
elif DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
REVIEWDESK_PASSWORD_RESET = bool(EMAIL_HOST) or DEBUG

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"reviewdesk": {"level": os.environ.get("REVIEWDESK_LOG_LEVEL", "INFO")}},
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = _env_bool("REVIEWDESK_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Ops: metrics, health, stuck threads, alerts, worker routing --------------------------------
# /metrics answers a request carrying "Authorization: Bearer <token>"; with no token set, only
# staff sessions may read it.
REVIEWDESK_METRICS_TOKEN = os.environ.get("REVIEWDESK_METRICS_TOKEN", "")
# A pending item older than this (seconds) is overdue, unless its queue's alerting says otherwise.
REVIEWDESK_OVERDUE_AFTER = int(os.environ.get("REVIEWDESK_OVERDUE_AFTER", "3600"))
# A run older than this (seconds) is listed as long-running on the ops page.
REVIEWDESK_LONG_RUN = int(os.environ.get("REVIEWDESK_LONG_RUN", "300"))
# Seconds between ops sweeps (beat): stuck threads, alert thresholds, tally compaction.
REVIEWDESK_OPS_INTERVAL = float(os.environ.get("REVIEWDESK_OPS_INTERVAL", "60"))
# Where alerts go besides each queue's own addresses; the key that signs alert webhooks.
REVIEWDESK_ALERT_EMAILS = [
    a.strip() for a in os.environ.get("REVIEWDESK_ALERT_EMAILS", "").split(",") if a.strip()
]
REVIEWDESK_WEBHOOK_SECRET = os.environ.get("REVIEWDESK_WEBHOOK_SECRET", "")
# Celery queue per graph, JSON {"graph": "queue"}: workers started with `-Q queue` run those
# graphs' threads; every other task (and graph) goes to Celery's default queue "celery".
REVIEWDESK_WORKER_QUEUES: dict[str, str] = json.loads(
    os.environ.get("REVIEWDESK_WORKER_QUEUES", "{}")
)
CELERY_TASK_ROUTES = ("reviewdesk.celery.route_task",)
CELERY_BEAT_SCHEDULE["ops-sweep"] = {
    "task": "reviewdesk.tasks.ops_sweep",
    "schedule": REVIEWDESK_OPS_INTERVAL,
}
