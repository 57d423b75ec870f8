"""App config for the authz-edge companion (needed for its management command)."""

from django.apps import AppConfig


class AuthzEdgeConfig(AppConfig):
    name = "authz_edge_django"
    verbose_name = "authz-edge companion"
