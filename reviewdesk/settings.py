"""Settings for reviewdesk; everything a deployment changes comes from the environment."""

from __future__ import annotations

import json
import os
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
    "reviewdesk",
]

MIDDLEWARE = [
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
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE makes every transaction take SQLite's write lock up front, so
        # select_for_update() (a no-op on SQLite) still serialises a thread's runs and answers.
        "transaction_mode": "IMMEDIATE",
        "timeout": 60,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so the Celery worker and Daphne started by the tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-reviewdesk.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
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
            # redis-py 8 raises instead of waiting once its pool is full: size it for many sockets.
            "hosts": [{"address": REDIS_URL, "max_connections": 1000}],
            "prefix": os.environ.get("REVIEWDESK_CHANNEL_PREFIX", "reviewdesk"),
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
