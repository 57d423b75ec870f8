"""Authentication backends the companion's tests put in AUTHENTICATION_BACKENDS."""
from django.contrib.auth.backends import ModelBackend


class StaleCacheBackend(ModelBackend):
    """A permission cache filled before the grant: it holds no permission for anyone."""

    def get_all_permissions(self, user_obj, obj=None):
        return set()


class OwnerBackend:
    """An object backend with an owner-only policy: `has_perm(perm, user)` on a user object
    only for the user themself."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return obj is not None and getattr(obj, "pk", None) == user_obj.pk


class ReplicaRouter:
    """Permission reads go to the `replica` database."""

    def db_for_read(self, model, **hints):
        if model._meta.app_label == "auth" and model.__name__ == "Permission":
            return "replica"
        return None
