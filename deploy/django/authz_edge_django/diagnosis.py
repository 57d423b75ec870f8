"""What only Django knows about a denial, told to the proxy so that it can name the cause.

Computed only for 401/403 responses (and 500s caused by PermissionError), never on other
responses. The permission and migration facts are cached per process and refreshed after
`post_migrate` in this process, or after CACHE_SECONDS (a `manage.py migrate` runs in another
process than gunicorn's workers).
"""

import difflib
import os
import threading
import time
from importlib import import_module

from django.conf import settings
from django.db.models.signals import post_migrate

from . import grants

# Headers (stripped by the proxy like every X-Authz-* header).
PERMISSION_STATE = "X-Authz-Permission-State"
MIGRATIONS = "X-Authz-Migrations"
ANONYMOUS = "X-Authz-Anonymous"
CSRF = "X-Authz-Csrf"
PATH = "X-Authz-Path"
RUN_AS = "X-Authz-Run-As"

CACHE_SECONDS = 30
# Unapplied migrations named at most.
MAX_MIGRATIONS = 5

_lock = threading.Lock()
_cache = {"at": 0.0, "facts": None}


class Facts:
    """Permissions in the database, permissions the models declare, migrations not applied."""

    def __init__(self, existing, declared, unapplied):
        self.existing = existing
        self.declared = declared
        self.unapplied = unapplied
        self.known = sorted(existing | declared)


def invalidate(**kwargs):
    with _lock:
        _cache["facts"] = None


post_migrate.connect(invalidate, dispatch_uid="authz_edge_django.diagnosis.invalidate")


def _load():
    from django.apps import apps
    from django.contrib.auth.models import Permission
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor

    existing = {
        f"{app}.{codename}"
        for app, codename in Permission.objects.values_list("content_type__app_label", "codename")
    }
    declared = set()
    for model in apps.get_models():
        opts = model._meta
        for action in opts.default_permissions:
            declared.add(f"{opts.app_label}.{action}_{opts.model_name}")
        for codename, _name in opts.permissions:
            declared.add(f"{opts.app_label}.{codename}")
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        unapplied = [f"{m.app_label}.{m.name}" for m, backwards in plan if not backwards]
    except Exception:  # a broken migration graph must not break the response
        unapplied = []
    return Facts(existing, declared, unapplied)


def facts():
    now = time.monotonic()
    with _lock:
        cached = _cache["facts"]
        if cached is not None and now - _cache["at"] < CACHE_SECONDS:
            return cached
    loaded = _load()
    with _lock:
        _cache["facts"] = loaded
        _cache["at"] = now
    return loaded


def nearest(perm, f):
    """The closest existing or declared permission, for a typo or a missing app label."""
    if "." in perm:
        match = difflib.get_close_matches(perm, f.known, n=1, cutoff=0.75)
        return match[0] if match else None
    by_codename = {}
    for p in f.known:
        by_codename.setdefault(p.split(".", 1)[1], p)
    match = difflib.get_close_matches(perm, list(by_codename), n=1, cutoff=0.75)
    return by_codename[match[0]] if match else None


def permission_states(perms, user=None, object_perms=()):
    """`perm=state[~nearest]` for each denied permission, the unapplied migrations that matter
    (those of the apps whose permissions are not migrated), and how the primary database
    grants the first existing one to the signed-in `user` (`grants.explain`): a permission
    that exists may still be stale in a cache, lag on a replica, belong to an inactive user, or
    be asked about an object no backend can grant."""
    f = facts()
    out, apps_missing, grant = [], set(), None
    for perm in perms:
        near = None
        if "." not in perm:
            state = "malformed"
        elif perm in f.existing:
            state = "exists"
            if user is not None:
                state, near, how = grants.explain(user, perm, perm in object_perms)
                grant = grant or how
        elif perm in f.declared:
            state = "not_migrated"
            apps_missing.add(perm.split(".", 1)[0])
        else:
            state = "unknown"
        entry = f"{perm}={state}"
        if state in ("unknown", "malformed"):
            near = nearest(perm, f)
        if near and near != perm:
            entry += f"~{near}"
        out.append(entry)
    migrations = [m for m in f.unapplied if m.split(".", 1)[0] in apps_missing]
    if apps_missing and not migrations:
        migrations = list(f.unapplied)
    return ",".join(out), ",".join(migrations[:MAX_MIGRATIONS]), grant


def anonymous_reason(request):
    """Why Django has no user although the request carried a session cookie or credentials;
    None when it carried neither, or the user is signed in."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return None
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if user is None and (cookie or request.META.get("HTTP_AUTHORIZATION")):
        return "no_auth_middleware"
    if cookie:
        return _session_reason(cookie)
    if request.META.get("HTTP_AUTHORIZATION"):
        return "credentials_rejected"
    return None


def _session_reason(key):
    engine_name = settings.SESSION_ENGINE
    signed = engine_name.endswith("signed_cookies")
    try:
        engine = import_module(engine_name)
        store = engine.SessionStore(key)
        if signed and _signed_cookie_expired(store, key):
            return "session_expired"
        data = store.load()
        if not signed and not store.exists(key):
            return "session_unknown"
        if not data and _db_session_expired(engine_name, key):
            return "session_expired"
    except Exception:
        return "session_undecodable"
    if not data:
        # The row exists but did not decode: signed with another SECRET_KEY.
        return "session_undecodable"
    if "_auth_user_id" not in data:
        return "session_without_user"
    backend = data.get("_auth_user_backend")
    if backend and backend not in settings.AUTHENTICATION_BACKENDS:
        return "backend_removed"
    from django.contrib.auth import get_user_model

    # The user exists but is inactive: ModelBackend's get_user refuses them, so Django
    # answers them as anonymous.
    if grants.is_inactive(get_user_model(), data["_auth_user_id"]):
        return "user_inactive"
    return "session_invalidated"


def _db_session_expired(engine_name, key):
    """A database session whose row is still there but past its expiry date (Django loads it
    as empty, as it loads one signed with another key)."""
    if engine_name not in (
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cached_db",
    ):
        return False
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    return Session.objects.filter(session_key=key, expire_date__lte=timezone.now()).exists()


def _signed_cookie_expired(store, key):
    """A signed-cookie session whose signature is good but whose age is past the limit."""
    from django.core import signing

    try:
        signing.loads(
            key,
            serializer=store.serializer,
            max_age=store.get_session_cookie_age(),
            salt="django.contrib.sessions.backends.signed_cookies",
        )
    except signing.SignatureExpired:
        return True
    except Exception:
        return False
    return False


def csrf_context(request):
    """The scheme and host Django saw, and the Origin the browser sent."""
    try:
        host = request.get_host()
    except Exception:  # DisallowedHost
        host = request.META.get("HTTP_HOST", "?")
    origin = request.META.get("HTTP_ORIGIN", "-")
    return f"scheme={request.scheme} host={host} origin={origin}"


def _roots():
    for name in ("MEDIA_ROOT", "STATIC_ROOT", "BASE_DIR"):
        root = getattr(settings, name, None)
        if root:
            yield os.path.abspath(str(root))


def path_prefix(filename):
    """The directory to report for a file the app could not open: the root it lies in plus the
    first directory below it (`/srv/app/media/uploads`), never a file name."""
    if not filename:
        return None
    path = os.path.abspath(os.fsdecode(filename))
    for root in sorted(_roots(), key=len, reverse=True):
        if path == root:
            return root
        if path.startswith(root + os.sep):
            parts = path[len(root) + 1 :].split(os.sep)
            return root if len(parts) == 1 else os.path.join(root, parts[0])
    # Outside the known roots: the parent directory, at most three levels deep.
    parent = os.path.dirname(path).split(os.sep)[:4]
    return os.sep.join(parent) or os.sep


def run_as():
    """`uid:gid` the process runs as (effective), for the fix's chown line."""
    return f"{os.geteuid()}:{os.getegid()}"
