"""Per-request record of what authorization decided, shared by the backend and middleware."""

import contextvars

# The record of the request being served; a contextvar so that threads and async views each
# see their own.
_current = contextvars.ContextVar("authz_edge_record", default=None)

KINDS = ("permission", "csrf", "login", "object", "other", "filesystem")


class Record:
    """What the companion learned about one request."""

    __slots__ = (
        "denied_permissions",
        "object_checks",
        "object_perms",
        "kind",
        "reason",
        "csrf",
        "path",
        "role",
    )

    def __init__(self):
        self.denied_permissions = []
        self.object_checks = 0
        # The denied permissions that were asked about an object (`has_perm(perm, obj)`).
        self.object_perms = set()
        self.kind = None
        self.reason = None
        # On a CSRF failure: what Django saw (diagnosis.csrf_context).
        self.csrf = None
        # On a PermissionError: the directory it concerns (diagnosis.path_prefix).
        self.path = None
        # The role test (`is_superuser`, a test function's name) that raised PermissionDenied.
        self.role = None

    def deny(self, perm, obj=None):
        if perm not in self.denied_permissions and len(self.denied_permissions) < 8:
            self.denied_permissions.append(perm)
        if obj is not None:
            self.object_checks += 1
            if len(self.object_perms) < 8:
                self.object_perms.add(perm)


def begin():
    record = Record()
    return record, _current.set(record)


def end(token):
    _current.reset(token)


def current():
    return _current.get()


def mark(request=None, kind=None, reason=None):
    """Tell the proxy the kind and reason of the denial this request is about to return."""
    record = current()
    if record is None:
        return
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        record.kind = kind
    if reason is not None:
        record.reason = str(reason)
