"""Settings for the companion's own tests."""
SECRET_KEY = "companion-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "authz_edge_django",
    "tests",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "authz_edge_django.middleware.AuthzEdgeMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "authz_edge_django.backends.RecordingBackend",
]
CSRF_FAILURE_VIEW = "authz_edge_django.csrf.csrf_failure"
ROOT_URLCONF = "tests.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    # For the lagging replica's test (tests.backends.ReplicaRouter): a database of its own.
    "replica": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
AUTHZ_EDGE_RELEASE = "test-release"
USE_TZ = True
MEDIA_ROOT = "/srv/app/media"
