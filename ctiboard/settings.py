"""ctiboard settings: every knob is an environment variable with a safe default for the demo."""

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from ctiboard.lib.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_mapping,
    env_optional,
    env_str,
)
from ctiboard.ops import logs
from ctiboard.ops.role import application_name, process_role
from ctiboard.ops.runtime import report_slow_collections, tune_gc

# web, worker, webhooks, demo, ...: CTIBOARD_ROLE, else from the command line. PostgreSQL shows
# it as application_name, the JSON log lines carry it.
CTIBOARD_ROLE = process_role(sys.argv, os.environ)

LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be plain or json")
# First: whatever fails from here on (a malformed setting included) is logged in the format.
logs.configure(CTIBOARD_ROLE)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "ctiboard.ops.logs.PlainFormatter"},
        "json": {"()": "ctiboard.ops.logs.JsonFormatter"},
    },
    "filters": {"repeats": {"()": "ctiboard.lib.outage.ThrottleRepeats"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Its pub/sub receive task logs a traceback a second while Redis is down. (A logger's
        # filters do not reach its children: each module's logger is named.)
        "channels_redis.pubsub": {"filters": ["repeats"]},
        "channels_redis.core": {"filters": ["repeats"]},
        "httpx": {"level": "WARNING"},
        # The pool logs every failed connection attempt while the database is away; the
        # worker's writers and the web's errors say it once (DATABASE faults, production.md).
        "psycopg.pool": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        # Daphne's access log (ops.logs routes it here); set WARNING to silence it.
        "daphne.access": {"level": env_str("CTIBOARD_ACCESS_LOG_LEVEL", "INFO")},
        "django.channels.server": {"level": "WARNING"},
        # Its start banner at INFO in every process; failures and lockouts are warnings.
        "axes": {"level": "WARNING"},
    },
}

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CTIBOARD_DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    configured = env_optional("SECRET_KEY")
    if configured:
        return configured
    # The demo must run without configuration, yet sessions should survive a restart:
    # keep a generated key beside the SQLite database. Production sets SECRET_KEY.
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "channels",
    "django_htmx",
    "template_partials",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "ctiboard.tenancy",
    "ctiboard.live",
    "ctiboard.calls",
    "ctiboard.ingest",
    "ctiboard.board",
    "ctiboard.contacts",
    "ctiboard.history",
    "ctiboard.gateway",
    "ctiboard.webhooks",
    "ctiboard.simulator",
    "ctiboard.demo",
    "ctiboard.accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Every page is personal: no-store unless a view sets its own Cache-Control (static files
    # were answered by WhiteNoise above and stay cacheable).
    "ctiboard.lib.no_store.no_store_middleware",
    # Before SessionMiddleware: it judges which ended sessions end board sockets once the
    # request's own session is saved (live.session_ends).
    "ctiboard.live.session_ends.SessionSocketsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "ctiboard.accounts.second_factor.StaffSecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as Axes wants: turns a locked-out login into the "locked" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "ctiboard.urls"
ASGI_APPLICATION = "ctiboard.asgi.application"

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
                "django.template.context_processors.i18n",
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'ctiboard.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
        # A kept or pooled connection is checked before use (the pool's check_connection):
        # one the server ended (restart, failover, pg_terminate_backend) is replaced instead
        # of failing the request that got it.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker writes while web requests read; WAL and a busy timeout keep SQLite from
    # answering "database is locked" under that mix.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    # One file per test process: test runs side by side must not share a database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = application_name(
        CTIBOARD_ROLE
    )
# PostgreSQL connections come from a pool per process (psycopg_pool, Django's "pool" option):
# without one, every request and every board socket's connect opened a connection of its own,
# a new PostgreSQL backend each time (18 % of a web process's time while 1,000 sockets
# connected, bench/README.md). 0 turns the pool off.
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 4, minimum=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE:
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured(
            "DATABASE_CONN_MAX_AGE and DATABASE_POOL_SIZE both keep PostgreSQL connections:"
            " set DATABASE_CONN_MAX_AGE=0 to use the pool, or DATABASE_POOL_SIZE=0"
        )
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        # A request waits this long for a free (or, the database away, any) connection, then
        # fails with an error. The worker retries on its own and may set it shorter.
        "timeout": env_float("DATABASE_POOL_TIMEOUT", 10, minimum=0.1),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_optional("REDIS_URL")
if REDIS_URL:
    # Pub/sub: one PUBLISH per group message, fanned out locally in every web process that
    # has a member socket; no capacity or expiry to tune (docs/production.md).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                # Pub/sub ignores Redis database numbers: deployments sharing a Redis need
                # prefixes of their own.
                "prefix": env_str("CTIBOARD_CHANNEL_PREFIX", "asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "ctiboard.lib.layers.SweepingInMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes, ctiboard/board/login_throttle.py): failures count per user
# name and per client address; at the limit every password is refused, the right one too,
# until the cool-off has passed since the last failure or an admin deletes the attempt.
# AUTHENTICATION_BACKENDS: with company sign-in, below; Axes' backend first, as it wants.
AXES_FAILURE_LIMIT = env_int("CTIBOARD_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("CTIBOARD_LOGIN_COOLOFF_MINUTES", 15, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Trying again while locked does not prolong the lock: the page names an end that holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "ctiboard.board.login_throttle.locked_out"
# Failures are kept (until the cool-off ends); successful logins are not logged by Axes.
AXES_DISABLE_ACCESS_LOG = True
# The address Daphne saw (X-Forwarded-For is applied by its --proxy-headers), never a header.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "ctiboard" / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# WhiteNoise warns about a missing STATIC_ROOT even when it serves through the finders.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed names need collectstatic (the Docker image runs it); the demo does not.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("CTIBOARD_STATIC_MANIFEST", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# The demo runs without collectstatic: let WhiteNoise find files through the finders.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Production runs behind TLS: secure cookies and HSTS unless DEBUG, or HTTPS=0 for plain HTTP
# (the demo on 127.0.0.1 switches them off itself).
HTTPS = env_bool("HTTPS", not DEBUG)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # The proxy terminates TLS and says so in X-Forwarded-Proto (Caddy does; nginx needs
    # proxy_set_header X-Forwarded-Proto $scheme): without it every request would redirect.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probes speak plain HTTP to the process itself (container health checks, Prometheus):
    # a redirect to https://127.0.0.1 would fail them. Patterns match the path without "/".
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

# --- ctiboard ---------------------------------------------------------------------------
# The PBX simulator answers any login it was given and its control API (/_sim) creates tenants
# and injects faults: a stand-in for the demo and the tests, never for production. With DEBUG
# off nothing serves or mounts it (manage.py simulate, manage.py demo, the embedded mount)
# unless CTIBOARD_ALLOW_SIMULATOR=1 says so.
CTIBOARD_ALLOW_SIMULATOR = env_bool("CTIBOARD_ALLOW_SIMULATOR", DEBUG)
SIMULATOR_REFUSED = "the PBX simulator runs only with DEBUG=1 or CTIBOARD_ALLOW_SIMULATOR=1"
# Serve the PBX simulator inside the web process under this prefix (the demo turns it on).
CTIBOARD_EMBEDDED_SIMULATOR = env_bool("CTIBOARD_EMBEDDED_SIMULATOR", False)
if CTIBOARD_EMBEDDED_SIMULATOR and not CTIBOARD_ALLOW_SIMULATOR:
    raise ImproperlyConfigured(f"CTIBOARD_EMBEDDED_SIMULATOR=1: {SIMULATOR_REFUSED}")
CTIBOARD_SIMULATOR_PREFIX = "/pbx-simulator"
CTIBOARD_DEMO_PASSWORD = env_str("CTIBOARD_DEMO_PASSWORD", "demo")
# Seconds between re-syncs of each tenant's extension list from /extensions/phone/data.
CTIBOARD_EXTENSION_SYNC_INTERVAL = env_float("CTIBOARD_EXTENSION_SYNC_INTERVAL", 300, minimum=1)
# Under load the ingest worker stores (and publishes) at most one batch per tenant this often,
# in seconds: an event after a quiet spell goes out at once, a burst is gathered into one
# transaction. 0: whatever arrived while the previous batch was stored.
CTIBOARD_BATCH_INTERVAL = env_float("CTIBOARD_BATCH_INTERVAL", 0.01, minimum=0)
# A web process sends each board socket at most one round of changes this often, in seconds
# (live.fanout): more than a screen can show only costs the browsers time.
CTIBOARD_PUSH_INTERVAL = env_float("CTIBOARD_PUSH_INTERVAL", 0.02, minimum=0)
# Board sockets under Daphne accept the browser's permessage-deflate (lib.wsframes): each
# message is deflated once per process, not once per socket.
CTIBOARD_WEBSOCKET_COMPRESSION = env_bool("CTIBOARD_WEBSOCKET_COMPRESSION", True)
# Seconds without any frame on a CTI stream before it counts as stalled and is reopened.
CTIBOARD_STREAM_READ_TIMEOUT = env_float("CTIBOARD_STREAM_READ_TIMEOUT", 60, minimum=1)
# Keys that encrypt stored CTI API passwords (comma-separated; the first encrypts, all
# decrypt). Without them a key derived from SECRET_KEY is used.
CTIBOARD_CREDENTIALS_KEYS = env_list("CTIBOARD_CREDENTIALS_KEYS", [])
# The demo's simulated PBX: same seed, same names and the same traffic on every start.
CTIBOARD_DEMO_SEED = env_int("CTIBOARD_DEMO_SEED", 1)
CTIBOARD_DEMO_EXTENSIONS = env_int("CTIBOARD_DEMO_EXTENSIONS", 48, minimum=1)
CTIBOARD_DEMO_TRAFFIC_RATE = env_float("CTIBOARD_DEMO_TRAFFIC_RATE", 1.5, minimum=0)
# Seconds an ingest worker's tenant lease lasts unless renewed (every third of it): a dead
# worker's tenants are taken over this long after its last renewal.
CTIBOARD_LEASE_TTL = env_float("CTIBOARD_LEASE_TTL", 10, minimum=1)
# The ingest worker serves its Prometheus metrics on this port (0: off); web processes
# serve theirs at /metrics.
CTIBOARD_METRICS_PORT = env_int("CTIBOARD_METRICS_PORT", 0, minimum=0)
CTIBOARD_METRICS_ADDR = env_str("CTIBOARD_METRICS_ADDR", "127.0.0.1")
# /metrics (web and worker) and the details of /readyz need "Authorization: Bearer <token>";
# without a token only callers on the machine itself (loopback) get them (lib/operator.py).
CTIBOARD_METRICS_TOKEN = env_optional("CTIBOARD_METRICS_TOKEN")
if CTIBOARD_METRICS_TOKEN is not None and len(CTIBOARD_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("CTIBOARD_METRICS_TOKEN must be at least 16 characters long")
# The admin's "send a test event" may call loopback, private and link-local addresses (like
# deliver_webhooks --allow-private-networks): only where tenant administrators are trusted.
CTIBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env_bool(
    "CTIBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", False
)
# Click-to-call requests one user may make per window (seconds), across all web processes.
CTIBOARD_CALL_RATE_LIMIT = env_int("CTIBOARD_CALL_RATE_LIMIT", 10, minimum=1)
CTIBOARD_CALL_RATE_WINDOW = env_int("CTIBOARD_CALL_RATE_WINDOW", 60, minimum=1)
# New objects between two runs of Python's cyclic garbage collector (0: Python's default, 700).
CTIBOARD_GC_THRESHOLD = env_int("CTIBOARD_GC_THRESHOLD", 50_000, minimum=0)
tune_gc(CTIBOARD_GC_THRESHOLD)
CTIBOARD_GC_SLOW_MS = env_int("CTIBOARD_GC_SLOW_MS", 100, minimum=0)
report_slow_collections(CTIBOARD_GC_SLOW_MS)

# --- Company sign-in (OpenID Connect) and staff two-factor: docs/security.md -------------
# On when a client id is set. The endpoints come from the issuer's discovery document at the
# first sign-in (a provider that is down must not keep the process from starting); endpoints
# set explicitly win over it, and replace it without an issuer.
CTIBOARD_OIDC_CLIENT_ID = env_optional("CTIBOARD_OIDC_CLIENT_ID")
CTIBOARD_OIDC = CTIBOARD_OIDC_CLIENT_ID is not None
CTIBOARD_OIDC_ISSUER = env_optional("CTIBOARD_OIDC_ISSUER")
CTIBOARD_OIDC_ENDPOINTS = {
    "authorization_endpoint": env_optional("CTIBOARD_OIDC_AUTHORIZATION_ENDPOINT"),
    "token_endpoint": env_optional("CTIBOARD_OIDC_TOKEN_ENDPOINT"),
    "userinfo_endpoint": env_optional("CTIBOARD_OIDC_USERINFO_ENDPOINT"),
    "jwks_uri": env_optional("CTIBOARD_OIDC_JWKS_URI"),
}
_OIDC_NEEDED = ("authorization_endpoint", "token_endpoint", "jwks_uri")
if CTIBOARD_OIDC and not CTIBOARD_OIDC_ISSUER:
    _missing = [key for key in _OIDC_NEEDED if not CTIBOARD_OIDC_ENDPOINTS[key]]
    if _missing:
        raise ImproperlyConfigured(
            "CTIBOARD_OIDC_CLIENT_ID needs CTIBOARD_OIDC_ISSUER (discovery) or the endpoints: "
            + ", ".join(f"CTIBOARD_OIDC_{key.upper()}" for key in _missing)
        )
# "Sign in with <name>" on the login page; empty: "Sign in with your company account".
CTIBOARD_OIDC_PROVIDER_NAME = env_str("CTIBOARD_OIDC_PROVIDER_NAME", "").strip()
# Users are matched by e-mail, so only an address the provider vouches for counts (Entra ID:
# its optional claim xms_edov says the domain's owner verified it).
CTIBOARD_OIDC_EMAIL_VERIFIED_CLAIM = env_str("CTIBOARD_OIDC_EMAIL_VERIFIED_CLAIM", "email_verified")
# A new member's tenant: the K-Account in this claim, else by e-mail domain (example.com=K1234).
CTIBOARD_OIDC_TENANT_CLAIM = env_optional("CTIBOARD_OIDC_TENANT_CLAIM")
CTIBOARD_OIDC_TENANT_DOMAINS = {
    domain.lower(): account
    for domain, account in env_mapping("CTIBOARD_OIDC_TENANT_DOMAINS").items()
}
# mozilla-django-oidc reads these; authorization code flow with PKCE (S256) always.
OIDC_RP_CLIENT_ID = CTIBOARD_OIDC_CLIENT_ID or ""
OIDC_RP_CLIENT_SECRET = env_str("CTIBOARD_OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = env_str("CTIBOARD_OIDC_SCOPES", "openid email profile")
OIDC_RP_SIGN_ALGO = env_str("CTIBOARD_OIDC_SIGN_ALGO", "RS256")
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_TIMEOUT = env_float("CTIBOARD_OIDC_TIMEOUT", 10, minimum=1)
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_callback"

# Off: only the OpenID provider signs users in (the login page, the admin and every other
# authenticate() call refuse passwords). Needs OIDC, or nobody could sign in.
CTIBOARD_PASSWORD_LOGIN = env_bool("CTIBOARD_PASSWORD_LOGIN", True)
if not CTIBOARD_PASSWORD_LOGIN and not CTIBOARD_OIDC:
    raise ImproperlyConfigured("CTIBOARD_PASSWORD_LOGIN=0 needs CTIBOARD_OIDC_CLIENT_ID")
AUTHENTICATION_BACKENDS = [
    *(
        ["ctiboard.board.login_throttle.LoginThrottle", "django.contrib.auth.backends.ModelBackend"]
        if CTIBOARD_PASSWORD_LOGIN
        else []
    ),
    *(["ctiboard.accounts.backend.CompanySignIn"] if CTIBOARD_OIDC else []),
]
# Staff who signed in with a password need a TOTP code for the admin (the demo turns it off).
CTIBOARD_STAFF_2FA = env_bool("CTIBOARD_STAFF_2FA", True)
OTP_TOTP_ISSUER = env_str("CTIBOARD_2FA_ISSUER", "ctiboard")
