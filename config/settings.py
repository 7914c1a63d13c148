"""Settings for dialer. Every value comes from the environment, with safe local defaults."""
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


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"

ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

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
]

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
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dialer"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
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

# Celery: only already-admitted work travels through the broker (DESIGN section 2).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

TELEPHONY_PROVIDER = os.environ.get("TELEPHONY_PROVIDER", "simulated")
# Public base URL carriers use to reach our webhooks.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL", "")
# Simulated carrier: 1.0 = real time; 0.1 = ten times faster.
SIMULATED_TIME_SCALE = float(os.environ.get("SIMULATED_TIME_SCALE", "1.0"))

# Slot leases outlive the longest call we allow, so only a lost call frees its slot by expiry.
MAX_CALL_SECONDS = env_int("MAX_CALL_SECONDS", 1800)
SLOT_LEASE_SECONDS = env_int("SLOT_LEASE_SECONDS", MAX_CALL_SECONDS + 300)
# Recovery (dialer.maintenance): an admitted call whose dial job vanished is dialed again after
# this long; a call live this long is checked with its carrier.
REDIAL_ADMITTED_AFTER_SECONDS = env_int("REDIAL_ADMITTED_AFTER_SECONDS", 30)
STALE_CALL_CHECK_SECONDS = env_int("STALE_CALL_CHECK_SECONDS", 120)
# Campaign controls (campaigns.controls): a control changes at most CONTROL_INLINE_TASKS tasks in
# its request and leaves the rest to a job changing CONTROL_BATCH_TASKS per transaction; beat
# re-publishes the job of a control that made no progress for CONTROL_STALLED_SECONDS.
CONTROL_INLINE_TASKS = env_int("CONTROL_INLINE_TASKS", 1000)
CONTROL_BATCH_TASKS = env_int("CONTROL_BATCH_TASKS", 5000)
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
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # One JSON object per line with call, task and Celery job ids; secrets redacted (config/logging.py).
    "filters": {"context": {"()": "config.logging.ContextFilter"}},
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
