"""Django companion for the authz-edge proxy: context headers on every 401/403."""

from django.core.exceptions import PermissionDenied

from .context import mark

__all__ = ["ObjectPermissionDenied", "mark"]


class ObjectPermissionDenied(PermissionDenied):
    """Raise for an object-level refusal ("not your report"): reported as kind `object`."""
