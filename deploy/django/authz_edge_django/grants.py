"""Why a signed-in user was refused a permission that exists: what the primary database says.

Asked only on a denial of an existing permission, and at most once per user and permission per
second (a plain refusal) or GRANT_SECONDS (a fault) in each process: the answers are cached, the
cache bounded. It tells a stale permission cache, a read replica that lags, an inactive user,
an object check that no backend can grant.
"""

import threading
import time

from django.conf import settings

# How long an answer is kept per (user, permission), and how many are kept. A plain refusal
# (`exists`: the user lacks it) is kept only a second, so that a grant made since is seen at
# once as a stale cache rather than reported as a refusal; the other answers describe a fault
# that lasts until it is fixed, and a fixed fault sends no more denials to ask about.
GRANT_SECONDS = 10
PLAIN_REFUSAL_SECONDS = 1
MAX_ENTRIES = 1024

_lock = threading.Lock()
_answers = {}


def grant_on(alias, user, perm):
    """How database `alias` grants `perm` to `user`, bypassing every cache: `direct`,
    `group:NAME`, `superuser`, or None."""
    from django.contrib.auth.models import Group, Permission

    app_label, codename = perm.split(".", 1)
    rows = Permission.objects.using(alias).filter(
        content_type__app_label=app_label, codename=codename
    )
    # request.user is a lazy object: its model is the class behind it.
    model = user._meta.model
    if not hasattr(model, "user_permissions"):
        return None
    if model._default_manager.using(alias).filter(pk=user.pk, user_permissions__in=rows).exists():
        return "direct"
    group = (
        Group.objects.using(alias)
        .filter(user__pk=user.pk, permissions__in=rows)
        .order_by("name")
        .values_list("name", flat=True)
        .first()
    )
    if group is not None:
        return f"group:{group}"
    if model._default_manager.using(alias).filter(pk=user.pk, is_superuser=True).exists():
        return "superuser"
    return None


def is_inactive(model, user_id):
    """Whether user `user_id` exists on the primary database with `is_active` false (a user
    model without the field has no inactive users)."""
    from django.db import DEFAULT_DB_ALIAS

    if not any(f.name == "is_active" for f in model._meta.concrete_fields):
        return False
    try:
        rows = model._default_manager.using(DEFAULT_DB_ALIAS)
        return rows.filter(pk=user_id, is_active=False).exists()
    except (ValueError, TypeError):  # a session's id of another type
        return False


def implements_object_permissions(backend):
    """Whether an authentication backend can grant a permission on an object.

    ModelBackend refuses every check with an object; a subclass of it implements object
    permissions only if it overrides has_perm (a subclass that caches permission sets overrides
    the get_*_permissions methods and still refuses objects). Any other backend that answers
    has_perm (django-guardian, django-rules, an app's own) is taken to implement them.
    """
    from django.contrib.auth.backends import ModelBackend

    from .backends import RecordingBackend

    if isinstance(backend, RecordingBackend) or not hasattr(backend, "has_perm"):
        return False
    if isinstance(backend, ModelBackend):
        return type(backend).has_perm is not ModelBackend.has_perm
    return True


def object_backend_exists():
    from django.contrib.auth import get_backends

    return any(implements_object_permissions(b) for b in get_backends())


def _replica(user):
    """The database the permission check reads, when a router sends it elsewhere than the
    primary."""
    from django.contrib.auth.models import Permission
    from django.db import DEFAULT_DB_ALIAS, router

    alias = router.db_for_read(Permission, instance=user) or DEFAULT_DB_ALIAS
    if alias == DEFAULT_DB_ALIAS or alias not in settings.DATABASES:
        return None
    return alias


def _compute(user, perm, on_object):
    """`(state, replica alias or None, grant or None)` for an existing permission."""
    from django.db import DEFAULT_DB_ALIAS

    if on_object:
        if object_backend_exists():
            return "object_denied", None, None
        return "no_object_backend", None, grant_on(DEFAULT_DB_ALIAS, user, perm)
    grant = grant_on(DEFAULT_DB_ALIAS, user, perm)
    if grant is None:
        return "exists", None, None
    if is_inactive(user._meta.model, user.pk):
        return "inactive_user", None, grant
    replica = _replica(user)
    if replica is not None and grant_on(replica, user, perm) is None:
        return "replica_lag", replica, grant
    return "stale_cache", None, grant


def explain(user, perm, on_object):
    """`(state, replica, grant)` for a signed-in user's denial of an existing `perm`, cached
    per (user, permission) for GRANT_SECONDS; errors (a database that is down) say `exists`."""
    key = (user.pk, perm, on_object)
    now = time.monotonic()
    with _lock:
        hit = _answers.get(key)
        if hit is not None:
            ttl = PLAIN_REFUSAL_SECONDS if hit[1][0] == "exists" else GRANT_SECONDS
            if now - hit[0] < ttl:
                return hit[1]
    try:
        answer = _compute(user, perm, on_object)
    except Exception:
        answer = ("exists", None, None)
    with _lock:
        if len(_answers) >= MAX_ENTRIES:
            _answers.clear()
        _answers[key] = (now, answer)
    return answer


def forget():
    """Drops every cached answer (for tests)."""
    with _lock:
        _answers.clear()
