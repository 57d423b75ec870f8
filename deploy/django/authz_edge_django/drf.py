"""Django REST framework exception handler that reports the kind of 401/403 to the proxy.

    REST_FRAMEWORK = {"EXCEPTION_HANDLER": "authz_edge_django.drf.exception_handler"}
"""

from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from .context import current, mark


def exception_handler(exc, context):
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        mark(kind="login", reason=str(exc.detail))
    elif isinstance(exc, exceptions.PermissionDenied):
        record = current()
        kind = "permission" if record is not None and record.denied_permissions else "other"
        mark(kind=kind, reason=str(exc.detail))
    return drf_exception_handler(exc, context)
