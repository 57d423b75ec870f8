"""Settings of the end-to-end test app; the environment switches the companion on and off."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# A deploy can rotate it (DJANGO_SECRET_KEY), as a real one might by mistake.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "e2e-test-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]

COMPANION = os.environ.get("AUTHZ_COMPANION") == "1"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "reports",
]
if COMPANION:
    INSTALLED_APPS.append("authz_edge_django")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
}
# Scenarios switch the backends: a permission cache shared by the workers (PERMISSION_CACHE=1),
# inactive users allowed to sign in (ALLOW_INACTIVE=1), an owner-only object policy
# (OBJECT_BACKEND=owner).
if os.environ.get("PERMISSION_CACHE") == "1":
    AUTHENTICATION_BACKENDS = ["reports.backends.CachedPermissionBackend"]
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.path.join(
                os.path.dirname(os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "e2e.sqlite3"))),
                "cache",
            ),
        }
    }
if os.environ.get("ALLOW_INACTIVE") == "1":
    AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
if os.environ.get("OBJECT_BACKEND") == "owner":
    AUTHENTICATION_BACKENDS.append("reports.backends.OwnerBackend")
if COMPANION:
    MIDDLEWARE.append("authz_edge_django.middleware.AuthzEdgeMiddleware")
    AUTHENTICATION_BACKENDS.append("authz_edge_django.backends.RecordingBackend")
    CSRF_FAILURE_VIEW = "authz_edge_django.csrf.csrf_failure"
    REST_FRAMEWORK["EXCEPTION_HANDLER"] = "authz_edge_django.drf.exception_handler"

# Release v2 of the reports app declares a new permission; its migration is
# reports/migrations_v2/0002_approve_report.py (a deploy may forget to run it).
if os.environ.get("REPORTS_V2") == "1":
    MIGRATION_MODULES = {"reports": "reports.migrations_v2"}

ROOT_URLCONF = "testproj.urls"
WSGI_APPLICATION = "testproj.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "testproj" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "e2e.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static_src"]
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", str(BASE_DIR / "media"))
LOGIN_REDIRECT_URL = "/accounts/profile/"

# Behind authz-edge: the settings the README documents.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
LOGGING = {"version": 1, "disable_existing_loggers": True}
