"""Settings for dialer. Every value comes from the environment, with safe local defaults."""
import base64
import datetime as dt
import hashlib
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def env_header(name):
    """A request header as `Name: value` (e.g. `X-Forwarded-Proto: https`) → Django's META form."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    header, _, expected = value.partition(":")
    if not expected.strip():
        raise ImproperlyConfigured(f"{name} must look like 'X-Forwarded-Proto: https'.")
    return "HTTP_" + header.strip().upper().replace("-", "_"), expected.strip()


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

# HTTPS. A production deployment (DEBUG off) is served over HTTPS unless it says otherwise with
# SECURE_HTTPS=false (a local run, a test on loopback): that one switch turns off the redirect,
# HSTS and secure-only cookies together, which would otherwise make plain-HTTP logins impossible.
SECURE_HTTPS = env_bool("SECURE_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = SECURE_HTTPS
# Paths (regexes, no leading slash) answered over plain HTTP too, e.g. `^metrics$` for a scraper
# inside the network; whatever they serve then travels unencrypted.
SECURE_REDIRECT_EXEMPT = [p.strip() for p in os.environ.get("SECURE_REDIRECT_EXEMPT", "").split(",") if p.strip()]
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000) if SECURE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy, the header it sets (and strips from clients) to say the
# request came over HTTPS; unset, only a direct TLS connection counts as secure.
SECURE_PROXY_SSL_HEADER = env_header("SECURE_PROXY_SSL_HEADER")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    # Before campaigns, whose admin re-registers axes' pages for superusers only.
    "axes",
    "campaigns",
    "dialer",
    "telephony",
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
    # Last, as django-axes requires: it answers a locked-out login attempt.
    "axes.middleware.AxesMiddleware",
]
# The stack of the webhooks and the REST API (config/wsgi.py): the same security headers, HTTPS
# redirect and host check (CommonMiddleware asks for the host), none of what serves people.
MACHINE_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out user/address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Admin login lockout (django-axes): after AXES_FAILURE_LIMIT failed logins for one username from
# one address, that pair is refused — the right password included — for AXES_COOLOFF_MINUTES, or
# until a superuser deletes the attempt in the admin (or runs `manage.py axes_reset`).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "config.urls"

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

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dialer"), engine="config.postgres",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A persistent connection is checked before its first use in each request and job, so the
        # first one after a database restart or failover reconnects instead of failing. The
        # backend (config/postgres) checks the socket first and runs SELECT 1 only when it is readable.
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", True),
    )
}
# Hot statements are prepared once per connection (config/prepared.py); off behind a pooler
# in transaction mode, where a session's prepared statements do not follow its transactions.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
# Parallel test runs (several developers or helpers on one machine) need their own database.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_dialer")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Uploads are bounded before parsing (CSV imports have their own row limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
CSV_MAX_ROWS = env_int("CSV_MAX_ROWS", 5000)
CSV_MAX_BYTES = env_int("CSV_MAX_BYTES", 50 * 1024 * 1024)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Celery: only already-admitted work travels through the broker (docs/architecture.md).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

TELEPHONY_PROVIDER = os.environ.get("TELEPHONY_PROVIDER", "simulated")
# Public base URL carriers use to reach our webhooks.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
# Where the Twilio SDK sends its requests (empty = Twilio itself); a local stand-in in benchmarks.
TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL", "")
# Where a stream agent's audio goes when its runtime names no URL of its own.
AGENT_MEDIA_STREAM_URL = os.environ.get("AGENT_MEDIA_STREAM_URL", "wss://agent.invalid/media")
# Voice-AI platform credentials (API keys, webhook secrets) are encrypted at rest with these Fernet
# keys, comma-separated, newest first (older ones still decrypt, for rotation). Only a development
# deployment (DEBUG on) falls back to a key derived from SECRET_KEY; without one, integrations
# cannot be saved or used.
INTEGRATIONS_ENCRYPTION_KEY = os.environ.get("INTEGRATIONS_ENCRYPTION_KEY", "") or (
    base64.urlsafe_b64encode(hashlib.sha256(f"integrations:{SECRET_KEY}".encode()).digest()).decode()
    if DEBUG else "")
# Every carrier request gives up after this long: a slow carrier holds only its own calls.
CARRIER_TIMEOUT_SECONDS = float(os.environ.get("CARRIER_TIMEOUT_SECONDS", "10"))
# The threads that send calls to the carrier, kept by each dialer process: its Celery threads (the
# worker's `--concurrency`, read at its start; DIALER_CONCURRENCY, which the Procfile passes, when
# it is `auto`) × DIAL_PLACING_THREADS (one dial job's calls at once; a job holds at most
# DIAL_JOB_SIZE, 20). A job's pre-dial checks use DIAL_PLACING_THREADS.
DIAL_PLACING_THREADS = env_int("DIAL_PLACING_THREADS", 20)
DIALER_CONCURRENCY = env_int("DIALER_CONCURRENCY", 32)
# A call the carrier would not take for a reason not about the callee (429, 5xx, timeout) is not
# an attempt: its task is queued again after a backoff that doubles from the base up to the cap,
# or after the carrier's Retry-After when it sent one (still capped).
CARRIER_RETRY_BASE_SECONDS = float(os.environ.get("CARRIER_RETRY_BASE_SECONDS", "1"))
CARRIER_RETRY_MAX_SECONDS = float(os.environ.get("CARRIER_RETRY_MAX_SECONDS", "60"))
# Requests to URLs customers chose (webhooks; telephony/outbound.py) reach only public internet
# addresses unless this is on: for a deployment that really calls internal hosts.
OUTBOUND_ALLOW_PRIVATE = env_bool("OUTBOUND_ALLOW_PRIVATE", False)
OUTBOUND_CONNECT_TIMEOUT_SECONDS = env_float("OUTBOUND_CONNECT_TIMEOUT_SECONDS", 3.0)
OUTBOUND_TIMEOUT_SECONDS = env_float("OUTBOUND_TIMEOUT_SECONDS", 10.0)
OUTBOUND_MAX_RESPONSE_BYTES = env_int("OUTBOUND_MAX_RESPONSE_BYTES", 64 * 1024)
# Simulated carrier: 1.0 = real time; 0.1 = ten times faster.
SIMULATED_TIME_SCALE = float(os.environ.get("SIMULATED_TIME_SCALE", "1.0"))

# Slot leases outlive the longest call we allow, so only a lost call frees its slot by expiry.
MAX_CALL_SECONDS = env_int("MAX_CALL_SECONDS", 1800)
SLOT_LEASE_SECONDS = env_int("SLOT_LEASE_SECONDS", MAX_CALL_SECONDS + 300)
# Recovery (dialer.maintenance): an admitted call whose dial job vanished is dialed again after
# this long; a call live this long is checked with its carrier.
REDIAL_ADMITTED_AFTER_SECONDS = env_int("REDIAL_ADMITTED_AFTER_SECONDS", 30)
# Every organisation's wake-up is re-derived from PostgreSQL at least this often (dialer/wakeups.py):
# the longest a lost schedule write can delay a call.
WAKEUP_RECONCILE_SECONDS = env_int("WAKEUP_RECONCILE_SECONDS", 60)
STALE_CALL_CHECK_SECONDS = env_int("STALE_CALL_CHECK_SECONDS", 120)
# Campaign controls (campaigns.actions.controls, control_jobs): a control changes at most CONTROL_INLINE_TASKS tasks in
# its request and leaves the rest to jobs changing CONTROL_BATCH_TASKS per transaction, its tasks
# split by id over CONTROL_JOBS concurrent jobs (1: one job walks them all); beat re-publishes the
# job of a control's part that made no progress for CONTROL_STALLED_SECONDS.
CONTROL_INLINE_TASKS = env_int("CONTROL_INLINE_TASKS", 1000)
CONTROL_BATCH_TASKS = env_int("CONTROL_BATCH_TASKS", 5000)
CONTROL_JOBS = env_int("CONTROL_JOBS", 2)
CONTROL_STALLED_SECONDS = env_int("CONTROL_STALLED_SECONDS", 30)
# How long an answered call waits for the agent's post-call analysis before finishing as connected.
ANALYSIS_WAIT_SECONDS = env_int("ANALYSIS_WAIT_SECONDS", 30)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("API_THROTTLE_RATE", "6000/min")},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "dialer API",
    "DESCRIPTION": "Outbound AI-calling campaigns: campaigns, tasks, calls, slots and do-not-call.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["campaigns.api.docs.drop_trailing_slash_aliases"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "campaigns.api.docs.add_components_and_links"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One JSON object per line with call, task and Celery job ids; secrets redacted (config/logging.py).
    "filters": {"context": {"()": "config.logging.ContextFilter"}},
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # The Twilio SDK logs a dozen INFO lines per request (headers included): at hundreds of calls a
    # second that is most of a dial worker's CPU. Its warnings and errors still come through.
    # The carriers' and platforms' SDK clients log every request at INFO: one line per call placed.
    "loggers": {"twilio.http_client": {"level": os.environ.get("TWILIO_LOG_LEVEL", "WARNING")},
                "httpx": {"level": os.environ.get("HTTPX_LOG_LEVEL", "WARNING")}},
}
