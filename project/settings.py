"""Settings, all read from the environment; the README's configuration table lists each one."""

import ipaddress
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from project import object_storage
from project.env import env_bool, env_float, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

# The embedded default is a developer's machine; the Docker image sets DEBUG=false.
DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

PUBLIC_BASE_URL = env_url("PUBLIC_BASE_URL", "http://localhost:8000", schemes=("http", "https"))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
CSRF_TRUSTED_ORIGINS = [PUBLIC_BASE_URL]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "django_htmx",
    "template_partials",
    "django_q",
    "ninja",  # its vendored Swagger UI assets: the API docs load nothing from a CDN
    "studio",
]

MIDDLEWARE = [
    # /healthz, /readyz, /metrics: answered first, before the HTTPS redirect and the Host check
    # (a load balancer may ask by IP address); they read no session and show no URL.
    "studio.views.health.HealthEndpointsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A polled job status that has not changed: 304 from one query, before sessions and the rest.
    "studio.unchanged_polls.UnchangedStatusMiddleware",
    "studio.security.CSPMiddleware",  # every response, error pages and the API included
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "studio.middleware.UploadSizeLimitMiddleware",  # before anything reads the body
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

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
                "studio.context.workspace",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except Exception as error:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {error}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write at the same time: wait for the lock instead of failing,
    # and take it at BEGIN so a read-then-write transaction never deadlocks on upgrade.
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    if _db["NAME"] != ":memory:":
        Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A file, not memory, so the browser test's worker process can share the test database.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Caches ---------------------------------------------------------------------------------
# "default" is shared by every process, so failed logins are counted across all of them: Redis
# when there is one, else a table in the database (made by a migration; no server to run).
# "local" is each process's own memory, for memos on hot paths (a polled page's ETA medians)
# that must cost no query. The API's per-token rate limit counts in Redis when there is one and
# otherwise per process: a database write on every API request would cost more than it guards.
REDIS_URL = env_str("REDIS_URL", "")
CACHE_TABLE = "studio_cache"
_LOCAL = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
if REDIS_URL:
    env_url("REDIS_URL", REDIS_URL, schemes=("redis", "rediss", "unix"))
    _SHARED = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
else:
    _SHARED = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": CACHE_TABLE}
CACHES = {
    "default": _SHARED,
    "local": _LOCAL | {"LOCATION": "local"},
    "api_throttle": _SHARED if REDIS_URL else _LOCAL | {"LOCATION": "api-throttle"},
}

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "studio.User"
AUTHENTICATION_BACKENDS = [
    # Django's and allauth's, able to take the user from the row a team page already read.
    "studio.auth.ModelBackend",
    "studio.auth.AllauthBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "optional")
if ACCOUNT_EMAIL_VERIFICATION not in ("none", "optional", "mandatory"):
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be none, optional or mandatory")
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_BY_CODE_ENABLED = False
# "key" is the e-mail typed in: five failures on one account lock it for five minutes.
ACCOUNT_RATE_LIMITS = {"login_failed": env_str("LOGIN_FAILED_RATE_LIMIT", "10/m/ip,5/5m/key")}
LOGIN_REDIRECT_URL = "home"
LOGIN_URL = "account_login"

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Studio <studio@localhost>")

# --- Files ----------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start without it
STATICFILES_DIRS = [BASE_DIR / "static"]
# Media is never served from a public URL: every file goes through a view that checks membership.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media"))).resolve()
# No route serves this prefix (Django's test server needs some value); links use studio.views.files.
MEDIA_URL = "/private-media/"
# Media on an S3-compatible object store (django-storages) when S3_BUCKET is set, else on local
# disk. Objects stay private; a member's browser is redirected to a presigned URL that lives
# S3_PRESIGNED_TTL seconds (studio/media.py). Empty keys leave credentials to boto3's own chain.
S3_BUCKET = env_str("S3_BUCKET", "")
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL", "")
if S3_ENDPOINT_URL:
    S3_ENDPOINT_URL = env_url("S3_ENDPOINT_URL", "", schemes=("http", "https"))
S3_REGION = env_str("S3_REGION", "")
S3_ACCESS_KEY_ID = env_str("S3_ACCESS_KEY_ID", "")
S3_SECRET_ACCESS_KEY = env_str("S3_SECRET_ACCESS_KEY", "")
S3_ADDRESSING_STYLE = env_str("S3_ADDRESSING_STYLE", "auto")
S3_PRESIGNED_TTL = env_int("S3_PRESIGNED_TTL", 300, minimum=1)
if S3_BUCKET and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", S3_BUCKET):
    raise ImproperlyConfigured(f"S3_BUCKET must be an S3 bucket name, got {S3_BUCKET!r}")
for _name in ("S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
    if globals()[_name] and not S3_BUCKET:
        raise ImproperlyConfigured(f"{_name} is set but S3_BUCKET, which turns S3 on, is not")
if bool(S3_ACCESS_KEY_ID) != bool(S3_SECRET_ACCESS_KEY):
    raise ImproperlyConfigured("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together")
if S3_ADDRESSING_STYLE not in object_storage.ADDRESSING_STYLES:
    raise ImproperlyConfigured(
        f"S3_ADDRESSING_STYLE must be auto, path or virtual, got {S3_ADDRESSING_STYLE!r}"
    )
if S3_PRESIGNED_TTL > object_storage.MAX_PRESIGNED_TTL:
    raise ImproperlyConfigured(
        f"S3_PRESIGNED_TTL must be at most {object_storage.MAX_PRESIGNED_TTL} (7 days), "
        f"got {S3_PRESIGNED_TTL}"
    )
# Local media behind nginx: a member's file is answered with an empty response carrying
# `X-Accel-Redirect: <this prefix><name>`, and nginx sends the bytes from an `internal` location
# (README, production). Empty: Django streams the file itself.
MEDIA_ACCEL_REDIRECT = env_str("MEDIA_ACCEL_REDIRECT", "")
if MEDIA_ACCEL_REDIRECT and not re.fullmatch(r"/([^\s?#]*/)?", MEDIA_ACCEL_REDIRECT):
    raise ImproperlyConfigured(
        f"MEDIA_ACCEL_REDIRECT must be a path that starts and ends with /, "
        f"got {MEDIA_ACCEL_REDIRECT!r}"
    )
if MEDIA_ACCEL_REDIRECT and S3_BUCKET:
    raise ImproperlyConfigured("MEDIA_ACCEL_REDIRECT is for local media: unset it with S3_BUCKET")
_S3_PLACE = {
    "bucket": S3_BUCKET,
    "endpoint_url": S3_ENDPOINT_URL,
    "region": S3_REGION,
    "addressing_style": S3_ADDRESSING_STYLE,
}
# Where presigned URLs point: the page's Content-Security-Policy lets the player go there.
MEDIA_ORIGINS = object_storage.media_origins(**_S3_PLACE) if S3_BUCKET else []
STORAGES = {
    "default": object_storage.s3_storage(
        **_S3_PLACE,
        access_key_id=S3_ACCESS_KEY_ID,
        secret_access_key=S3_SECRET_ACCESS_KEY,
        presigned_ttl=S3_PRESIGNED_TTL,
    )
    if S3_BUCKET
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Renders and output copies work in folders here; the sweep removes what killed workers left.
SCRATCH_DIR = Path(env_str("SCRATCH_DIR", str(VAR_DIR / "tmp"))).resolve()
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
MAX_UPLOAD_PIXELS = env_int("MAX_UPLOAD_PIXELS", 40_000_000, minimum=10_000)

# --- REST API -------------------------------------------------------------------------------
# Requests per token per minute (429 with Retry-After beyond it); counted in the cache, which
# is shared by every process when REDIS_URL is set.
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 600, minimum=1)
# An `image_url` is fetched within these limits (the byte limit is MAX_UPLOAD_BYTES).
API_IMAGE_FETCH_TIMEOUT = env_float("API_IMAGE_FETCH_TIMEOUT", 20.0, minimum=1.0, maximum=120.0)
# Django's own request cap must let a full-size image through, plus the form fields.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_HANDLERS = [
    "studio.arriving_images.ImageCheckingUploadHandler",  # an image is checked as it arrives
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Worker (django-q2) ---------------------------------------------------------------------
# The slowest task may run this long; every task checks it itself. django-q2 kills a task past
# `timeout` and hands it out again after `retry`, so retry > timeout > slowest task, or a slow
# render would be started twice.
TASK_TIME_LIMIT = env_int("TASK_TIME_LIMIT", 120, minimum=10)
Q_TIMEOUT = env_int("Q_TIMEOUT", 180, minimum=1)
Q_RETRY = env_int("Q_RETRY", 240, minimum=1)
if not Q_RETRY > Q_TIMEOUT > TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"Q_RETRY ({Q_RETRY}) must be greater than Q_TIMEOUT ({Q_TIMEOUT}), which must be greater "
        f"than TASK_TIME_LIMIT ({TASK_TIME_LIMIT}), the slowest task"
    )
Q_CLUSTER = {
    "name": "studio",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": Q_TIMEOUT,
    "retry": Q_RETRY,
    "max_attempts": 2,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
    "poll": 0.2,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Providers --------------------------------------------------------------------------------
# Keys come only from the environment and never reach logs, pages or stored answers. A provider
# without a key shows on the form as unavailable. Base URLs are settings so the same code talks to
# the real service in production and to the simulators (tests/simulators) everywhere else.
STABILITY_API_KEY = env_str("STABILITY_API_KEY", "")
STABILITY_BASE_URL = env_url(
    "STABILITY_BASE_URL", "https://api.ezlinkai.com", schemes=("http", "https")
)
MODELSLAB_API_KEY = env_str("MODELSLAB_API_KEY", "")
MODELSLAB_BASE_URL = env_url(
    "MODELSLAB_BASE_URL", "https://modelslab.com/api/v6", schemes=("http", "https")
)
# Which plan the platform holds with ModelsLab: it sets the ultra price and the in-flight limit.
MODELSLAB_PLAN = env_str("MODELSLAB_PLAN", "basic")
if MODELSLAB_PLAN not in ("basic", "standard", "premium"):
    raise ImproperlyConfigured(
        f"MODELSLAB_PLAN must be basic, standard or premium, got {MODELSLAB_PLAN!r}"
    )
# Kling v1 through the AI/ML API (seed 003). The seed's create path and the current universal one
# take the same body; AIML_API_PATH picks which we call ("seed" or "universal").
AIML_API_KEY = env_str("AIML_API_KEY", "")
AIML_BASE_URL = env_url("AIML_BASE_URL", "https://api.aimlapi.com", schemes=("http", "https"))
AIML_API_PATH = env_str("AIML_API_PATH", "universal")
if AIML_API_PATH not in ("seed", "universal"):
    raise ImproperlyConfigured(f"AIML_API_PATH must be seed or universal, got {AIML_API_PATH!r}")
# AKOOL (seed 002): a Bearer token from getToken with the client id and secret (which also decrypt
# its callbacks), or x-api-key when AKOOL_API_KEY is set.
AKOOL_API_KEY = env_str("AKOOL_API_KEY", "")
AKOOL_CLIENT_ID = env_str("AKOOL_CLIENT_ID", "")
AKOOL_CLIENT_SECRET = env_str("AKOOL_CLIENT_SECRET", "")
AKOOL_BASE_URL = env_url(
    "AKOOL_BASE_URL", "https://openapi.akool.com/api/open/v4", schemes=("http", "https")
)
AKOOL_TOKEN_URL = env_url(
    "AKOOL_TOKEN_URL", "https://openapi.akool.com/api/open/v3/getToken", schemes=("http", "https")
)
# The subscription the platform holds: 10 s videos and the premium model need "pro" or above.
AKOOL_PLAN = env_str("AKOOL_PLAN", "pro")
AKOOL_PLANS = ("free", "starter", "pro", "pro_max", "business", "enterprise")
if AKOOL_PLAN not in AKOOL_PLANS:
    raise ImproperlyConfigured(f"AKOOL_PLAN must be one of {', '.join(AKOOL_PLANS)}")
# Tasks per resultsByIds request (AKOOL documents no limit).
AKOOL_BATCH_SIZE = env_int("AKOOL_BATCH_SIZE", 50, minimum=1)
# The client id and secret are checked at start-up (studio.apps): they are AES's IV and key.
PROVIDER_PLANS = {"modelslab": MODELSLAB_PLAN, "akool": AKOOL_PLAN}
# Compresses every documented provider wait (poll spacing, rate windows, deadlines) for simulator
# runs and tests; 1 in production.
PROVIDER_TIME_SCALE = env_float("PROVIDER_TIME_SCALE", 1.0, minimum=0.001, maximum=1.0)
# The job engine (manage.py run_engine): threads making provider calls in one process.
ENGINE_THREADS = env_int("ENGINE_THREADS", 8, minimum=1)
# Asked to stop, run_engine claims nothing more and lets its provider calls and webhook sends
# finish for at most this long; a call still running is then abandoned (its lease hands the job
# to the next engine, as after a crash). Keep it under the supervisor's grace period.
ENGINE_STOP_SECONDS = env_int("ENGINE_STOP_SECONDS", 30, minimum=1)
# Largest provider output we copy; a bigger one fails the job (and is refunded).
MAX_OUTPUT_BYTES = env_int("MAX_OUTPUT_BYTES", 512 * 1024 * 1024, minimum=1024)

# Customers' URLs (API image_url, webhook endpoints) may not reach private addresses
# (studio/public_urls.py); development lets these networks through, e.g. 127.0.0.0/8.
OUTBOUND_ALLOW_NETWORKS = env_list("OUTBOUND_ALLOW_NETWORKS", [])
for _network in OUTBOUND_ALLOW_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError:
        raise ImproperlyConfigured(
            f"OUTBOUND_ALLOW_NETWORKS must list networks like 127.0.0.0/8, got {_network!r}"
        ) from None

# Outbound webhooks (studio/outbound): how long one delivery may take, the threads sending them
# in a worker task or the engine loop, and how many days of nothing but failures disable an
# endpoint.
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 15, minimum=1)
WEBHOOK_THREADS = env_int("WEBHOOK_THREADS", 8, minimum=1)
WEBHOOK_DISABLE_AFTER_DAYS = env_int("WEBHOOK_DISABLE_AFTER_DAYS", 5, minimum=1)
if WEBHOOK_TIMEOUT_SECONDS * 4 >= TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"WEBHOOK_TIMEOUT_SECONDS ({WEBHOOK_TIMEOUT_SECONDS}) must be under a quarter of "
        f"TASK_TIME_LIMIT ({TASK_TIME_LIMIT}): the sending task must finish within it"
    )

# A job that has not finished by its provider's deadline expires and its credits return.
LOCAL_ENGINE_DEADLINE_SECONDS = env_int("LOCAL_ENGINE_DEADLINE_SECONDS", 900, minimum=60)

# --- Locale and security ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The product speaks English only. Without translation machinery every number, date and message a
# page prints skips the active-language lookup (a thread-local read per value: 5–10 % of a
# thousand-value page's CPU, measured with bench/pages.py's profile).
USE_I18N = False
USE_TZ = True

_HTTPS = PUBLIC_BASE_URL.startswith("https://")
SESSION_ENGINE = "studio.sessions"  # Django's database sessions, read without compiling a query
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _HTTPS
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS and not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# A client can send X-Forwarded-Proto itself: it is believed only when a proxy in front says it
# (and overwrites whatever the client sent). Off, a request is secure only if it came over TLS.
TRUST_X_FORWARDED_PROTO = env_bool("TRUST_X_FORWARDED_PROTO", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUST_X_FORWARDED_PROTO else None
USE_X_FORWARDED_HOST = False  # the Host header is checked against ALLOWED_HOSTS, never replaced
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response: scripts only from our own static files,
# never inline (the templates have none; htmx's indicator <style> is turned off in base.html).
# Inline styles are allowed: a few templates carry <style> blocks and style attributes, and with
# images, fonts and connections limited to 'self' an injected style has nowhere to send anything.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", *MEDIA_ORIGINS],  # MEDIA_ORIGINS: S3's, if on
        "media-src": ["'self'", "blob:", *MEDIA_ORIGINS],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- Logs, error reports, metrics -----------------------------------------------------------
# LOG_FORMAT=json: one JSON object a line, a record's `extra` fields (job, team, provider of a
# job's move) as fields of their own.
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler"}
        | ({"formatter": "json"} if LOG_FORMAT == "json" else {})
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # httpx logs every request line at INFO: too chatty for thousands of polls a minute.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# Errors (and logged exceptions) to Sentry, only with SENTRY_DSN; no personal data, no tracing
# unless SENTRY_TRACES_SAMPLE_RATE says so.
SENTRY_DSN = env_str("SENTRY_DSN", "")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        environment=env_str("SENTRY_ENVIRONMENT", "") or None,
        release=env_str("SENTRY_RELEASE", "") or None,
        traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0.0, maximum=1.0),
    )

# /metrics (studio.metrics): off (404) unless a token or allowed networks are set; with both,
# a scrape needs both. METRICS_PORT: run_engine serves its own process metrics (provider
# request latency and errors) there.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOW_NETWORKS = env_list("METRICS_ALLOW_NETWORKS", [])
for _network in METRICS_ALLOW_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOW_NETWORKS must list networks like 10.0.0.0/8, got {_network!r}"
        ) from None
METRICS_PORT = env_int("METRICS_PORT", 0, minimum=0) or None
if METRICS_PORT and METRICS_PORT > 65535:
    raise ImproperlyConfigured(f"METRICS_PORT must be a port number, got {METRICS_PORT}")

INVITE_TTL_DAYS = env_int("INVITE_TTL_DAYS", 7, minimum=1)
# Percentages of a monthly cap or member limit at which owners are warned (once per month each).
BUDGET_WARNING_PERCENTS = (80, 100)

# Credits a new user's personal team starts with, so a newcomer can make a first video (0: none).
WELCOME_CREDITS = env_int("WELCOME_CREDITS", 100, minimum=0)
