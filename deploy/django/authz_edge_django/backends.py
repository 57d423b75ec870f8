"""A recording authentication backend: it sees every permission no other backend granted."""

from .context import current


class RecordingBackend:
    """Place last in AUTHENTICATION_BACKENDS.

    Django asks each backend in turn and stops at the first that grants a permission, so this
    backend is asked only about permissions every other backend refused. It records them for
    the middleware and never grants, authenticates or loads anyone.
    """

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        record = current()
        if record is not None:
            record.deny(perm, obj)
        return False

    def has_module_perms(self, user_obj, app_label):
        return False

    def get_all_permissions(self, user_obj, obj=None):
        return set()
