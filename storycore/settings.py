"""StoryCore settings: one module, driven by environment variables with embedded defaults.

With nothing set, the studio runs on one machine: SQLite in var/, the embedded
Valkey started by `./studio run`, local media in var/media. docs/configuration.md
lists every variable.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from storycore.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_name_patterns,
    env_str,
    secret_key_from,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("STORYCORE_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = secret_key_from("SECRET_KEY", VAR_DIR / "secret_key")
DEBUG = env_bool("DEBUG", False)
# Encrypts backends' API keys at rest (generation/api_keys.py); SECRET_KEY when unset.
STORYCORE_SECRETS_KEY = env_str("STORYCORE_SECRETS_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "briefs",
    "generation",
    "telemetry",
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

ROOT_URLCONF = "storycore.urls"
WSGI_APPLICATION = "storycore.wsgi.application"
ASGI_APPLICATION = "storycore.asgi.application"

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

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'storycore.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a Celery worker writes; IMMEDIATE
    # transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Integration tests run Celery workers and servers in other processes, so the
    # test database must be a file they can open, not an in-memory one.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_storycore.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Valkey: Celery broker and channel layer ------------------------
EMBEDDED_VALKEY_PORT = env_int("EMBEDDED_VALKEY_PORT", 6390, minimum=1)
REDIS_URL = env_str("REDIS_URL", f"redis://127.0.0.1:{EMBEDDED_VALKEY_PORT}/0")

CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacknowledged task after this. Every task is short (renders are
# followed by the watcher, not by a task), so this only bounds how long a dead worker's
# task waits; the fault tests run with 2 s and a 5 s render to show nothing runs twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600, minimum=1),
    # A frozen broker must not hold a sender for long: the database has the job already.
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_ALWAYS_EAGER = False

CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer delivered every message of a burst where the list
        # layer dropped most of them past its channel capacity.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # Timeouts bound how long a live event can hold a request when Redis hangs;
        # events are hints (numbered per brief), so one that fails is only logged.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_connect_timeout": 2, "socket_timeout": 2}]},
    }
}
# A brief's events leave from several processes and may reach a socket out of order; each
# socket holds an early one this long (seconds) for the ones before it, then resyncs with a
# fresh snapshot (generation/live_order.py).
LIVE_EVENTS_REORDER_WINDOW = env_float("LIVE_EVENTS_REORDER_WINDOW", 2.0, minimum=0.05)
# A render's preview frames (a backend sends one per sampler step) go to its brief's sockets at
# most once per interval (seconds) per attempt; frames in between, and any larger than the cap
# (bytes; 0 sends none), are dropped (generation/live_previews.py).
LIVE_PREVIEW_MIN_INTERVAL_S = env_float("LIVE_PREVIEW_MIN_INTERVAL_S", 0.5, minimum=0.0)
LIVE_PREVIEW_MAX_BYTES = env_int("LIVE_PREVIEW_MAX_BYTES", 512 * 1024, minimum=0)
# Previews are scaled to the size a card shows before they go out: each goes to every socket on the brief.
LIVE_PREVIEW_MAX_SIDE = env_int("LIVE_PREVIEW_MAX_SIDE", 320, minimum=16)

# --- Storage --------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT / "artifacts")},
    },
    # Images people upload for renders to start from (img2img, ControlNet, character references).
    "inputs": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT / "inputs")},
    },
    # Files built from a brief's finals: zips, contact sheets, animatics, shot lists.
    "deliverables": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT / "deliverables")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
INPUT_IMAGE_MAX_BYTES = env_int("INPUT_IMAGE_MAX_BYTES", 20 * 1024 * 1024, minimum=1)

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True

# --- Auth, API ------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "briefs:list"
LOGOUT_REDIRECT_URL = "login"
# Live sockets ask again this often (seconds) whether their user may still follow the brief:
# a user deactivated or removed from the brief's team is cut off within this plus one query.
LIVE_ACCESS_RECHECK_INTERVAL = env_float("LIVE_ACCESS_RECHECK_INTERVAL", 2.0, minimum=0.05)
if LIVE_ACCESS_RECHECK_INTERVAL > 5:
    raise ImproperlyConfigured(
        f"LIVE_ACCESS_RECHECK_INTERVAL={LIVE_ACCESS_RECHECK_INTERVAL} is above 5 s: revoked users "
        "must stop receiving a brief's events within 5 s"
    )
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "storycore.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "StoryCore render studio API",
    "DESCRIPTION": "Briefs, scenes, renders and their artifacts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Rendering ------------------------------------------------------------
PREVIEW_SERVER_PORT = env_int("PREVIEW_SERVER_PORT", 8189, minimum=1)
PREVIEW_SERVER_URL = env_str("PREVIEW_SERVER_URL", f"http://127.0.0.1:{PREVIEW_SERVER_PORT}")
# How long the preview server takes over one frame: a stand-in for a GPU's render time.
PREVIEW_RENDER_SECONDS = env_float("PREVIEW_RENDER_SECONDS", 1.0, minimum=0.0)

# Outline expansion: any OpenAI-compatible chat-completions endpoint (OpenAI, OpenRouter, a local
# Ollama or LM Studio). With no base URL the built-in expander writes the outline, and says so.
OUTLINE_BASE_URL = env_str("OUTLINE_BASE_URL", "")
OUTLINE_MODEL = env_str("OUTLINE_MODEL", "gpt-4o-mini")
OUTLINE_API_KEY = env_str("OUTLINE_API_KEY", "")
OUTLINE_TIMEOUT = env_float("OUTLINE_TIMEOUT", 60.0, minimum=1.0)

# How long a deleted scene can be restored (the editor's undo); beat purges older ones for good.
SCENE_UNDO_KEEP_S = env_float("SCENE_UNDO_KEEP_S", 24 * 3600.0, minimum=1.0)
# A deliverable's build that has not moved for this long lost its worker: the sweep marks it failed
# (a queued one whose task message was lost is sent again).
DELIVERABLE_STALE_S = env_float("DELIVERABLE_STALE_S", 900.0, minimum=1.0)
# The longest animatic built (seconds): a longer brief is refused with its length, not encoded for hours.
DELIVERABLE_ANIMATIC_MAX_S = env_float("DELIVERABLE_ANIMATIC_MAX_S", 3600.0, minimum=1.0)
# The local RunPod-compatible endpoint (`manage.py runpod_endpoint`), a second backend of
# the embedded studio when LOCAL_RUNPOD is on.
LOCAL_RUNPOD = env_bool("LOCAL_RUNPOD", False)
LOCAL_RUNPOD_PORT = env_int("LOCAL_RUNPOD_PORT", 8191, minimum=1)
LOCAL_RUNPOD_ENDPOINT_ID = env_str("LOCAL_RUNPOD_ENDPOINT_ID", "local-comfyui")
# Environment variables a backend's API key may be read from: names, or prefixes ending in *.
# The key is sent to the backend's URL, so the studio's own secrets are refused whatever this
# says (generation/backend_config.py).
BACKEND_KEY_VARIABLES = env_name_patterns("BACKEND_KEY_VARIABLES", ["RUNPOD_*"])
DEFAULT_TEMPLATE_SLUG = env_str("DEFAULT_TEMPLATE_SLUG", "storyboard-txt2img")
WORKFLOWS_DIR = BASE_DIR / "workflows"
RENDER_CONNECT_TIMEOUT = env_float("RENDER_CONNECT_TIMEOUT", 5.0, minimum=0.1)
RENDER_MAX_WAIT = env_float("RENDER_MAX_WAIT", 600.0, minimum=1.0)
RENDER_POLL_INTERVAL = env_float("RENDER_POLL_INTERVAL", 2.0, minimum=0.05)
RENDER_POST_EXECUTION_TIMEOUT = env_float("RENDER_POST_EXECUTION_TIMEOUT", 30.0, minimum=0.1)
RENDER_MAX_POLL_ATTEMPTS = env_int("RENDER_MAX_POLL_ATTEMPTS", 0, minimum=0)
RENDER_RETRY_BUDGET = env_int("RENDER_RETRY_BUDGET", 1, minimum=0)
# How long a worker owns a job it is dispatching or fetching before the reconciler takes over.
RENDER_LEASE_SECONDS = env_float("RENDER_LEASE_SECONDS", 120.0, minimum=1.0)
# Threads the render watcher does its per-render database and HTTP work on. On SQLite every
# extra thread queues for the single writer: one thread measured 0.88 efficiency where eight
# gave 0.49 (benchmarks/dispatch_efficiency.py); PostgreSQL gains from a few.
WATCHER_THREADS = env_int(
    "WATCHER_THREADS", 1 if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else 4, minimum=1
)
DISPATCH_INTERVAL = env_float("DISPATCH_INTERVAL", 5.0, minimum=0.5)
RECONCILE_INTERVAL = env_float("RECONCILE_INTERVAL", 30.0, minimum=1.0)
# A backend's node catalogue is fetched again when older than this (seconds).
OBJECT_INFO_MAX_AGE = env_int("OBJECT_INFO_MAX_AGE", 900, minimum=0)
ARTIFACT_MAX_BYTES = env_int("ARTIFACT_MAX_BYTES", 200 * 1024 * 1024, minimum=1)
# Pillow only warns below its own bomb threshold; a small PNG can decode to gigabytes.
ARTIFACT_MAX_PIXELS = env_int("ARTIFACT_MAX_PIXELS", 64 * 1024 * 1024, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

BACKEND_HEALTH_INTERVAL = env_float("BACKEND_HEALTH_INTERVAL", 30.0, minimum=1.0)
CELERY_BEAT_SCHEDULE = {
    "check-backends": {
        "task": "generation.check_backends",
        "schedule": BACKEND_HEALTH_INTERVAL,
    },
    "reconcile": {"task": "generation.reconcile", "schedule": RECONCILE_INTERVAL},
    "dispatch": {"task": "generation.dispatch", "schedule": DISPATCH_INTERVAL},
    # Run reports of finished batches whose nudge was lost.
    "finish-runs": {"task": "telemetry.finish_runs", "schedule": RECONCILE_INTERVAL},
    # Outline requests whose task a lost broker message or a killed worker left behind.
    "resume-outlines": {"task": "briefs.resume_outlines", "schedule": RECONCILE_INTERVAL},
    # Deleted scenes past their undo window, with their renders.
    "purge-deleted-scenes": {"task": "briefs.purge_deleted_scenes", "schedule": 3600.0},
    # Deliverables whose build a lost broker message or a killed worker left behind.
    "sweep-deliverables": {"task": "generation.sweep_deliverables", "schedule": RECONCILE_INTERVAL},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Prometheus scrapers send this as `Authorization: Bearer …` to read /metrics; staff
# can read it with their session or API token. Empty: no bearer token is accepted.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# GPU probes asked before and after each attempt, in this order; the first that answers
# wins and each one that fails leaves a fallback note. pynvml and nvidia-smi see this
# machine's GPUs, so they are asked only for backends on this machine.
TELEMETRY_GPU_PROBES = [
    name
    for name in env_list("TELEMETRY_GPU_PROBES", ["pynvml", "system_stats", "nvidia_smi"])
    if name != "none"
]
if unknown_probes := set(TELEMETRY_GPU_PROBES) - {"pynvml", "system_stats", "nvidia_smi"}:
    raise ImproperlyConfigured(
        f"TELEMETRY_GPU_PROBES names unknown probe(s) {', '.join(sorted(unknown_probes))}; "
        "use pynvml, system_stats and nvidia_smi in the order wanted, or none"
    )
TELEMETRY_NVIDIA_SMI = env_str("TELEMETRY_NVIDIA_SMI", "nvidia-smi")
TELEMETRY_PROBE_TIMEOUT = env_float("TELEMETRY_PROBE_TIMEOUT", 2.0, minimum=0.1)
