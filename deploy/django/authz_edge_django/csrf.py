"""CSRF_FAILURE_VIEW wrapper: marks the denial as kind `csrf`, then renders Django's page."""

from django.views.csrf import csrf_failure as django_csrf_failure

from .context import current, mark
from .diagnosis import csrf_context


def csrf_failure(request, reason="", template_name=None):
    mark(request, kind="csrf", reason=f"CSRF verification failed: {reason}"[:200])
    record = current()
    if record is not None:
        record.csrf = csrf_context(request)
    if template_name is None:
        return django_csrf_failure(request, reason=reason)
    return django_csrf_failure(request, reason=reason, template_name=template_name)
