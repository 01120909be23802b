"""mdmportal settings: everything comes from the environment.

With DEBUG=true (./serve) and nothing else the portal runs on SQLite, runs Celery tasks in-process and
writes emails to the console. Production sets at least SECRET_KEY, CA_KEY_PASSPHRASE (without them it
refuses to start), DATABASE_URL, REDIS_URL, EMAIL_URL and the host names.
"""
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from mdmportal import secret_settings
from mdmportal.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A `.env` next to manage.py fills in what the environment lacks (the environment wins). MDMPORTAL_ENV_FILE
# names another file, or none when empty: the test suite sets it empty (tests/settings.py), so that
# neither it nor the processes it starts read a developer's `.env`.
ENV_FILE = env("MDMPORTAL_ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE:
    environ.Env.read_env(ENV_FILE, overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# Required outside DEBUG (refused below when missing or published, mdmportal/secret_settings.py): it signs
# sessions and the HMACs of enrollment/auth.py (federated sign-in tokens) and enrollment/ppkg.py.
# With DEBUG, the development key stands in.
DEV_SECRET_KEY = secret_settings.DEV_SECRET_KEY
SECRET_KEY = env("SECRET_KEY", default="")
if not DEBUG and (_refusal := secret_settings.refusal("SECRET_KEY", SECRET_KEY)):
    raise ImproperlyConfigured(_refusal)
SECRET_KEY = SECRET_KEY or DEV_SECRET_KEY

# Public addresses. PORTAL_URL is what users and administrators open; ENROLLMENT_URL is the
# default server address handed to Windows (the organisation can change it in the wizard).
PORTAL_URL = env("PORTAL_URL", default="http://127.0.0.1:8000").rstrip("/")
ENROLLMENT_URL = env("ENROLLMENT_URL", default=PORTAL_URL).rstrip("/")
# By default the hosts of those two addresses are allowed besides the loopback names, so that setting
# PORTAL_URL alone is enough to reach the portal by that name.
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=list(dict.fromkeys(
    ["127.0.0.1", "localhost", "testserver"]
    + [host for host in (urlsplit(PORTAL_URL).hostname, urlsplit(ENROLLMENT_URL).hostname) if host])))
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "mdmportal.apps.ConsoleConfig",  # the customised admin site (replaces django.contrib.admin)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens stored as a hash (invitations/api_tokens.py); before invitations, whose admin replaces knox's
    "drf_spectacular",
    "axes",
    "accounts",
    "pki",  # our certificate authority; below invitations and enrollment, which use it
    "invitations",
    "enrollment",  # the registration protocol: devices enroll
    "management",  # OMA-DM: enrolled devices are managed (above enrollment, below autopilot)
    "autopilot",
    "mdmportal.apps.MdmportalConfig",  # project-wide management commands (doctor)
]

MIDDLEWARE = [
    # First: X-Forwarded-For/-Proto believed only from TRUSTED_PROXIES, before anything reads the address.
    "mdmportal.proxies.ForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every page (mdmportal/csp.py, SECURE_CSP below).
    "mdmportal.csp.ContentSecurityPolicyMiddleware",
    # A NUL in a query parameter: a 400 before a filter hands it to PostgreSQL (mdmportal/nul_characters.py).
    "mdmportal.nul_characters.RefuseNulInQueryMiddleware",
    # Django's session, locale, auth and messages middleware, except that the OMA-DM endpoint and the
    # keyless discovery address pass them untouched: devices use none of them (mdmportal/device_requests.py).
    "mdmportal.device_requests.SessionMiddleware",
    "mdmportal.device_requests.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "mdmportal.device_requests.AuthenticationMiddleware",
    "mdmportal.device_requests.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # only looks at a flag the password checks set
    # PostgreSQL or Redis down: a 503 page / SOAP fault instead of a 500 (mdmportal/unavailable.py).
    "mdmportal.unavailable.DependencyUnavailableMiddleware",
]

ROOT_URLCONF = "mdmportal.urls"
WSGI_APPLICATION = "mdmportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mdmportal.csp.nonce",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that needs no round trip on a healthy connection.
    DATABASES["default"]["ENGINE"] = "mdmportal.postgresql"
# Persistent connections: a connection per request costs more than a whole OMA-DM message's queries
# (TCP, authentication, session set-up). Each gunicorn worker keeps one for CONN_MAX_AGE seconds, and
# checks it (SELECT 1) before the first query of each request, so a PostgreSQL restart costs the
# requests that run during the outage, not the ones after it. CONN_MAX_AGE=0 closes it after every
# request: the default with DEBUG, since the development server starts a thread per request. On
# PostgreSQL the check asks the server only when the socket says something happened (mdmportal/postgresql).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0 if DEBUG else 600))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
# PostgreSQL: the OMA-DM endpoint's statements (management/checkin_sql.py) are prepared on the server,
# parsed and planned once per connection; nothing else is. The connection keeps psycopg's default of
# Django (prepare_threshold None: no statement counted or prepared), and checkin_sql lifts it around
# its own statements only. Counting every statement would keep, per connection and for as long as it
# lives, the text of the last hundred, and Django binds parameters on the client: texts with their
# values, megabytes for an uploaded file's chunks or a bulk update (psycopg, "Prepared statements").
# False behind a connection pooler in transaction mode without prepared-statement support (PgBouncer
# before 1.21, or without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "enrollment.pins.PinBackend",  # only answers authenticate(..., pin=...) from the enrollment service
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "invitations:login"
LOGIN_REDIRECT_URL = "invitations:enroll"

# Sign-in lockout (django-axes): per account and, separately, per client address, on every form and
# enrollment endpoint that takes a password or a registration PIN. As Ivanti does, an account is locked
# for SIGNIN_LOCKOUT_SECONDS after SIGNIN_FAILURE_LIMIT failures; each further lockout lasts twice as
# long, up to SIGNIN_LOCKOUT_MAX_SECONDS, until a successful sign-in or SIGNIN_LOCKOUT_RESET_HOURS
# without a lockout (accounts/lockout.py).
AXES_FAILURE_LIMIT = env.int("SIGNIN_FAILURE_LIMIT", default=6)
SIGNIN_LOCKOUT_SECONDS = env.int("SIGNIN_LOCKOUT_SECONDS", default=30)
SIGNIN_LOCKOUT_MAX_SECONDS = env.int("SIGNIN_LOCKOUT_MAX_SECONDS", default=60 * 60)
SIGNIN_LOCKOUT_RESET_HOURS = env.int("SIGNIN_LOCKOUT_RESET_HOURS", default=24)
# Password reset by email (invitations/password_reset.py): requests an hour per client address and per
# email address typed, and the lifetime of a reset link.
PASSWORD_RESET_PER_ADDRESS = env.int("PASSWORD_RESET_PER_ADDRESS", default=10)
PASSWORD_RESET_PER_EMAIL = env.int("PASSWORD_RESET_PER_EMAIL", default=3)
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_HOURS", default=2) * 60 * 60
AXES_COOLOFF_TIME = "accounts.lockout.cool_off"
AXES_HANDLER = "accounts.lockout.GrowingLockoutHandler"
# A lockout lasts its interval from the failure that caused it; attempts while locked do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "accounts.lockout.account_for_lockout"
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "pin"]
AXES_LOCKOUT_TEMPLATE = "invitations/locked_out.html"
AXES_VERBOSE = False

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Compact dates that stay on one line in the console's lists (mdmportal/formats/<language>/formats.py).
FORMAT_MODULE_PATH = ["mdmportal.formats"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

# Email: production sets EMAIL_URL=smtp://user:pass@host:587 (or smtp+tls://). Unset, emails go to the
# console with DEBUG and fail outside it (mdmportal/mail.py): invitation links and PINs never go to the
# journal. Outside DEBUG a console or file backend is a system check error (mdmportal.E004).
if env("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
elif DEBUG:
    vars().update(env.email_url_config("consolemail://"))
else:
    EMAIL_BACKEND = "mdmportal.mail.UnconfiguredEmailBackend"
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="mdmportal <no-reply@localhost>")

# Invitations
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=14)
# An invitation email still "queued" this long after its request is re-queued by the sweep, and an
# enrollment-URL re-issue that has shown no progress this long is resumed (invitations/sending.py).
INVITATION_SWEEP_AFTER_SECONDS = env.int("INVITATION_SWEEP_AFTER_SECONDS", default=180)

# Windows enrollment, device side (enrollment/device_urls.py; literals from MS-MDE2 and MS-MDM).
# PROVIDER-ID of the provisioning document and the DMClient node: never change it once devices enrolled.
ENROLLMENT_PROVIDER_ID = env("ENROLLMENT_PROVIDER_ID", default="mdmportal")
# The sign-in method (MS-MDE2 AuthPolicy) a new organisation starts with: "onpremise" (the secret in the SOAP
# calls) or "federated" (our sign-in page). Afterwards it is the organisation's field in the console.
ENROLLMENT_AUTH_POLICY = env("ENROLLMENT_AUTH_POLICY", default="onpremise")
# Highest EnrollmentVersion we answer (MS-MDE2 3.1.4.1: min(ours, RequestVersion)); 5.0 and up makes Windows
# send TPM attestation items, which we do not verify, so 4.0 as Fleet does in production.
ENROLLMENT_MAX_VERSION = env("ENROLLMENT_MAX_VERSION", default="4.0")
# SOAP bodies larger than this get 413 before any parsing.
ENROLLMENT_MAX_BODY_BYTES = env.int("ENROLLMENT_MAX_BODY_BYTES", default=2 * 1024 * 1024)
# Lifetime of the token our federated sign-in page hands to Windows (valid for GetPolicies and RST).
ENROLLMENT_FEDERATED_TOKEN_SECONDS = env.int("ENROLLMENT_FEDERATED_TOKEN_SECONDS", default=15 * 60)
# How long a password verified by GetPolicies is trusted by the RST that follows it (one hash per enrollment).
ENROLLMENT_PASSWORD_CACHE_SECONDS = env.int("ENROLLMENT_PASSWORD_CACHE_SECONDS", default=5 * 60)
# Path of the OMA-DM endpoint written into the provisioning document (ADDR), on the enrollment host.
ENROLLMENT_MANAGEMENT_PATH = env("ENROLLMENT_MANAGEMENT_PATH", default="/ManagementServer/MDM.svc")
# Password, registration PIN or both, and the PINs' length and lifetime, are registration settings of
# the organisation and of user groups (accounts/registration.py), edited in the console.
# Refusals of clients that have not authenticated (wrong sign-ins, bad tokens, untrusted certificates) are
# audited one row per address, action, target and reason a minute, with a count; one address writes at
# most this many such rows a minute, the rest counted on one overflow row (accounts/models.py).
AUDIT_REFUSALS_PER_ADDRESS = env.int("AUDIT_REFUSALS_PER_ADDRESS", default=20)
# Provisioning-package PIN enrollments (enrollment/ppkg.py): this many wrong PINs in a row from one address
# (an IPv6 client's /64) lock that address out of the package for ENROLLMENT_PPKG_LOCKOUT_SECONDS, twice
# as long at each further lockout, at most a day; other addresses keep enrolling. The backstop, far above
# real use: ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT wrong PINs from anywhere within
# ENROLLMENT_PPKG_FAILURE_WINDOW_HOURS lock the package itself, with the same growing durations.
ENROLLMENT_PPKG_FAILURE_LIMIT = env.int("ENROLLMENT_PPKG_FAILURE_LIMIT", default=10)
ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT = env.int("ENROLLMENT_PPKG_PACKAGE_FAILURE_LIMIT", default=1000)
ENROLLMENT_PPKG_FAILURE_WINDOW_HOURS = env.int("ENROLLMENT_PPKG_FAILURE_WINDOW_HOURS", default=24)
ENROLLMENT_PPKG_LOCKOUT_SECONDS = env.int("ENROLLMENT_PPKG_LOCKOUT_SECONDS", default=15 * 60)
# Entra ID enrollment (enrollment/entra.py): how long the terms-of-use acceptance handed to Windows
# (OpaqueBlob, back as EnrollmentData) stays valid; the enrollment follows it within minutes.
ENROLLMENT_ENTRA_TERMS_SECONDS = env.int("ENROLLMENT_ENTRA_TERMS_SECONDS", default=24 * 60 * 60)
# The JWKS mirror decides which keys sign acceptable Entra ID tokens, so it is fetched over https only.
# True also accepts plain http to this machine (127.0.0.0/8, ::1, localhost): for test doubles, never
# in production.
ENTRA_ALLOW_LOOPBACK_HTTP = env.bool("ENTRA_ALLOW_LOOPBACK_HTTP", default=False)

# OMA-DM management (MS-MDM; management/omadm.py). nginx verifies the TLS client certificate and
# forwards it URL-escaped in X-SSL-Client-Cert; that header is believed only from these addresses
# (IPs or networks) and ignored, with an audit entry, from anyone else. The same addresses are the
# only ones whose X-Forwarded-For and X-Forwarded-Proto are believed (mdmportal/proxies.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=["127.0.0.1", "::1"])
# Bounded work per request: our commands per reply, messages per session, bytes kept per Results item.
ENROLLMENT_COMMANDS_PER_MESSAGE = env.int("ENROLLMENT_COMMANDS_PER_MESSAGE", default=50)
ENROLLMENT_SESSION_MAX_MESSAGES = env.int("ENROLLMENT_SESSION_MAX_MESSAGES", default=30)
ENROLLMENT_MAX_RESULT_BYTES = env.int("ENROLLMENT_MAX_RESULT_BYTES", default=64 * 1024)
# A command sent but never answered is sent again at most this many times in all, then failed.
ENROLLMENT_COMMAND_MAX_ATTEMPTS = env.int("ENROLLMENT_COMMAND_MAX_ATTEMPTS", default=2)
# Queued commands not delivered within this many days time out (queue(..., expires_in=) overrides).
ENROLLMENT_COMMAND_TTL_DAYS = env.int("ENROLLMENT_COMMAND_TTL_DAYS", default=30)
# The inventory (DevInfo/DevDetail) is read at the first session and then at most this often.
ENROLLMENT_INVENTORY_INTERVAL_HOURS = env.int("ENROLLMENT_INVENTORY_INTERVAL_HOURS", default=24)
# Device actions (management/actions.py): at most this many devices wiped by one action, so that a
# slip in a selection cannot reset the whole fleet.
ENROLLMENT_WIPE_LIMIT = env.int("ENROLLMENT_WIPE_LIMIT", default=10)

# Our CA (pki/ca.py). Its private keys are stored as PKCS#8 encrypted with this passphrase.
# cryptography's BestAvailableEncryption derives the key with PBKDF2-HMAC-SHA256 at only 2048
# iterations, so use a long random value (e.g. `openssl rand -base64 32`). Left empty, a passphrase
# is derived from SECRET_KEY: development only (outside DEBUG the settings refuse to load without it), and
# changing SECRET_KEY then makes the stored keys unreadable (enrollment.E002).
CA_KEY_PASSPHRASE = env("CA_KEY_PASSPHRASE", default="")
if not DEBUG and (_refusal := secret_settings.refusal("CA_KEY_PASSPHRASE", CA_KEY_PASSPHRASE)):
    raise ImproperlyConfigured(_refusal)
# Lifetime of issued device certificates (one year by default).
DEVICE_CERT_VALIDITY_DAYS = env.int("DEVICE_CERT_VALIDITY_DAYS", default=365)
# ROBO certificate renewal (MS-MDE2 3.5, CertificateStore CSP; enrollment/renewal.py). Windows asks for a new
# certificate this many days before its certificate expires (written into the provisioning document at
# enrollment, so a change reaches only devices enrolled afterwards) and retries every RETRY days until
# it expires; the server renews only inside that window. Windows wants 1 <= RETRY <= PERIOD <= 1000,
# and PERIOD must stay below the validity or devices would renew at every check.
ENROLLMENT_RENEW_PERIOD_DAYS = env.int("ENROLLMENT_RENEW_PERIOD_DAYS", default=60)
ENROLLMENT_RENEW_RETRY_DAYS = env.int("ENROLLMENT_RENEW_RETRY_DAYS", default=4)

# The Microsoft Graph connector (autopilot/graph.py) reads at most this many bytes of one answer; a
# page of a thousand Autopilot devices is about a megabyte.
GRAPH_MAX_RESPONSE_BYTES = env.int("GRAPH_MAX_RESPONSE_BYTES", default=16 * 1024 * 1024)

# Celery: Redis when REDIS_URL is set, otherwise tasks run in-process.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="mdmportal")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Sending must never hang a console request when the broker is down: the database row is the
# source of truth and the sweep re-queues it later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BEAT_SCHEDULE = {
    "sweep-queued-invitations": {
        "task": "invitations.tasks.sweep_queued_emails",
        "schedule": 60.0,
    },
    "expire-device-commands": {
        "task": "management.tasks.expire_commands",
        "schedule": 15 * 60.0,
    },
    # Spent Entra tokens are kept until they expire (about an hour): then validation refuses them.
    "purge-spent-entra-tokens": {
        "task": "enrollment.tasks.purge_spent_entra_tokens",
        "schedule": 60 * 60.0,
    },
    "finish-device-retirements": {
        "task": "management.tasks.finish_retirements",
        "schedule": 60.0,
    },
    "sweep-autopilot-imports": {
        "task": "autopilot.tasks.sweep_imports",
        "schedule": 60.0,
    },
    "finish-overdue-autopilot-setups": {
        "task": "autopilot.tasks.finish_overdue_setups",
        "schedule": 60.0,
    },
    "sweep-stalled-app-installs": {
        "task": "autopilot.tasks.sweep_stalled_installs",
        "schedule": 60.0,
    },
    # The optional Microsoft Graph connector (autopilot/graph_sync.py); does nothing while it is off.
    "sync-autopilot-with-graph": {
        "task": "autopilot.tasks.sync_with_graph",
        "schedule": 30 * 60.0,
    },
}

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mdmportal.api.ConsolePermissions"],
    # JSON, and DRF's HTML pages for a browser (with the inline styles they need, mdmportal/api.py).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "mdmportal.api.BrowsableAPIRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
}
# API tokens (django-rest-knox, invitations/api_tokens.py): only a SHA-512 of each is stored. They never
# expire unless API_TOKEN_TTL_DAYS is set (scripts use them); revoke or rotate them in the console or with
# `create_api_token --rotate`. "Authorization: Token <token>", as with Django REST framework's own tokens.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=0)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_TTL_DAYS) if API_TOKEN_TTL_DAYS else None,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mdmportal API",
    "DESCRIPTION": "Users, invitations and enrollment of Windows PCs and HoloLens 2.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Configuration group rules reuse the device's choices: one enum each in the schema.
    "ENUM_NAME_OVERRIDES": {
        "DeviceKindEnum": "enrollment.models.Device.Kind",
        "DeviceMethodEnum": "enrollment.models.Device.Method",
        "DeviceEnrollmentTypeEnum": "enrollment.models.Device.EnrollmentType",
        "EssentialAppKindEnum": "autopilot.models.EssentialApp.Kind",
        "ProvisioningItemKindEnum": "autopilot.models.ProvisioningItem.Kind",
        "EspStateEnum": "autopilot.models.AutopilotEnrollment.EspState",
    },
}

# Behind nginx: trust X-Forwarded-Proto for request.is_secure() (dropped unless from TRUSTED_PROXIES).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
# The portal and enrollment hosts are dedicated names (enterpriseenrollment.<domain>), so HSTS
# for their subdomains costs nothing; set these false if a host name is shared.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# A refused form gets the translated error page with the organisation's name (mdmportal/error_pages.py).
CSRF_FAILURE_VIEW = "mdmportal.error_pages.csrf_failure"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# SecurityMiddleware's defaults, spelled out: every response says nosniff and keeps its address to this site.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy of every HTML page (mdmportal/csp.py): nothing but our own files, no inline
# script or style without the page's nonce, no framing, forms posting only to us. The federated sign-in
# and terms-of-use pages add the Windows addresses they answer to (form-action).
SECURE_CSP = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # No invitation token in a record (mdmportal/log_redaction.py): on the loggers that write request
    # paths, so that every handler gets the redacted record, and on our handler for every other logger
    # (a logger's filter does not see its children's records: django-axes logs as axes.handlers.*).
    # On every handler: control characters of a message escaped, one record one line (log forging).
    "filters": {
        "invitation_tokens": {"()": "mdmportal.log_redaction.RedactInvitationTokens"},
        "control_characters": {"()": "mdmportal.log_redaction.EscapeControlCharacters"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["invitation_tokens", "control_characters"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["invitation_tokens"]},
        "django.server": {"filters": ["invitation_tokens"], "propagate": True},  # to the root handler
        "django.security.csrf": {"filters": ["invitation_tokens"]},
    },
}
