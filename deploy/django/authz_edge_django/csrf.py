"""CSRF_FAILURE_VIEW wrapper: marks the denial as kind `csrf`, then renders Django's page."""

from django.views.csrf import csrf_failure as django_csrf_failure

from .context import mark


def csrf_failure(request, reason="", template_name=None):
    mark(request, kind="csrf", reason=f"CSRF verification failed: {reason}"[:200])
    if template_name is None:
        return django_csrf_failure(request, reason=reason)
    return django_csrf_failure(request, reason=reason, template_name=template_name)
