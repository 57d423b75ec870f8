"""Authentication backends some end-to-end scenarios switch on (testproj/settings.py)."""
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache


class CachedPermissionBackend(ModelBackend):
    """Caches each user's permission set for ten minutes, as apps do to spare the database;
    a grant made meanwhile is not seen until the entry expires (PERMISSION_CACHE=1)."""

    def get_all_permissions(self, user_obj, obj=None):
        if obj is not None or not user_obj.is_active or user_obj.is_anonymous:
            return super().get_all_permissions(user_obj, obj)
        key = f"perms:{user_obj.pk}"
        perms = cache.get(key)
        if perms is None:
            perms = super().get_all_permissions(user_obj)
            cache.set(key, perms, 600)
        return perms


class OwnerBackend:
    """An object permission backend with an owner-only policy: a report's owner may change it,
    nobody else (OBJECT_BACKEND=owner)."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        owner = getattr(obj, "owner_id", None)
        return perm == "reports.change_report" and owner is not None and owner == user_obj.pk
