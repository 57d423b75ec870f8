"""The middleware that sets authz-edge's context headers on Django's responses."""

import os
import sys
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.signals import got_request_exception

from . import ObjectPermissionDenied, diagnosis, redirects, roles
from .context import begin, current, end

ROUTE = "X-Authz-Route"
RELEASE = "X-App-Release"
USER = "X-Authz-User"
KIND = "X-Authz-Kind"
PERMISSION = "X-Authz-Permission"
REASON = "X-Authz-Reason"
# When this process started serving its release (its import, at the worker's boot): a proxy
# restarted after a deploy still knows when the release began.
RELEASE_SINCE = "X-Authz-Release-Since"
# How the primary database grants a denied permission (a stale cache, an inactive user), and
# the role test that refused a signed-in user.
GRANT = "X-Authz-Grant"
ROLE = "X-Authz-Role"
STARTED = int(time.time())


def release():
    """The deployed release: settings.AUTHZ_EDGE_RELEASE, else $APP_RELEASE, else none."""
    value = getattr(settings, "AUTHZ_EDGE_RELEASE", None) or os.environ.get("APP_RELEASE")
    return str(value)[:100] if value else None


def clean(value, limit=200):
    """Header-safe text: printable ASCII, control characters dropped, bounded length."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(value))
    return text[:limit]


def _on_exception(sender, request=None, **kwargs):
    """Marks a PermissionError (a file the app cannot read or write) on its 500; the response
    itself is left alone."""
    exc = sys.exc_info()[1]
    record = current()
    if record is None or not isinstance(exc, PermissionError):
        return
    record.kind = "filesystem"
    record.path = diagnosis.path_prefix(exc.filename)


got_request_exception.connect(_on_exception, dispatch_uid="authz_edge_django.permission_error")


class AuthzEdgeMiddleware:
    """Place it after AuthenticationMiddleware (it reads request.user)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        record, token = begin()
        try:
            response = self.get_response(request)
            self.annotate(request, response, record)
            return response
        finally:
            end(token)

    def process_exception(self, request, exception):
        from .context import current

        record = current()
        if record is None or not isinstance(exception, PermissionDenied):
            return None
        if isinstance(exception, ObjectPermissionDenied):
            record.kind = record.kind or "object"
        if record.reason is None and str(exception):
            record.reason = str(exception)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not record.denied_permissions:
            record.role = roles.from_exception(exception)
        return None

    def annotate(self, request, response, record):
        match = getattr(request, "resolver_match", None)
        if match is not None and getattr(match, "route", None) is not None:
            response[ROUTE] = clean("/" + match.route.lstrip("^").rstrip("$"))
        rel = release()
        if rel:
            response[RELEASE] = clean(rel, 100)
        if response.status_code >= 500 and record.kind == "filesystem":
            response[KIND] = "filesystem"
            if record.path:
                response[diagnosis.PATH] = clean(record.path, 200)
            response[diagnosis.RUN_AS] = diagnosis.run_as()
            return
        redirect = response.status_code == 302 and redirects.is_login_redirect(request, response)
        if response.status_code not in (401, 403) and not redirect:
            return
        if rel:
            response[RELEASE_SINCE] = str(STARTED)
        user = getattr(request, "user", None)
        authenticated = bool(user is not None and user.is_authenticated)
        if authenticated:
            response[USER] = clean(user.pk, 64)
        if redirect:
            # A visitor asked to sign in, or a signed-in user refused (and sent to sign in).
            response[KIND] = "permission" if authenticated else "login"
        else:
            response[KIND] = self.kind(record, authenticated)
        if record.denied_permissions:
            response[PERMISSION] = clean(",".join(record.denied_permissions), 400)
            signed_in = user if authenticated else None
            states, migrations, grant = diagnosis.permission_states(
                record.denied_permissions, signed_in, record.object_perms
            )
            response[diagnosis.PERMISSION_STATE] = clean(states, 600)
            if migrations:
                response[diagnosis.MIGRATIONS] = clean(migrations, 300)
            if grant:
                response[GRANT] = clean(grant, 120)
        elif authenticated:
            test = record.role or roles.from_view(request)
            if test:
                response[ROLE] = clean(roles.header(test, user), 200)
        if record.reason:
            response[REASON] = clean(record.reason)
        if not authenticated:
            why = diagnosis.anonymous_reason(request)
            if why:
                response[diagnosis.ANONYMOUS] = why
        if record.csrf:
            response[diagnosis.CSRF] = clean(record.csrf, 300)

    @staticmethod
    def kind(record, authenticated):
        if record.kind == "filesystem":
            return "other"
        if record.kind:
            return record.kind
        if record.denied_permissions:
            return "object" if record.object_checks else "permission"
        if not authenticated:
            return "login"
        return "other"
