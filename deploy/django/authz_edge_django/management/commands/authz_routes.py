"""`manage.py authz_routes`: print the project's URL patterns as authz-edge [[routes]]."""

from django.core.management.base import BaseCommand
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern


def walk(patterns, prefix="", skipped=None):
    """Yield full route strings of path() patterns; regex patterns go to `skipped`."""
    for p in patterns:
        pattern = p.pattern
        if not isinstance(pattern, RoutePattern):
            if skipped is not None:
                skipped.append(prefix + str(pattern))
            continue
        route = prefix + str(pattern._route)
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, route, skipped)
        elif isinstance(p, URLPattern):
            yield route


class Command(BaseCommand):
    help = "Print the URL patterns as [[routes]] entries for the authz-edge config."

    def handle(self, *args, **options):
        skipped = []
        seen = set()
        for route in walk(get_resolver().url_patterns, skipped=skipped):
            full = "/" + route
            if full in seen:
                continue
            seen.add(full)
            self.stdout.write("[[routes]]")
            self.stdout.write(f'pattern = "{full}"')
            self.stdout.write("")
        for s in skipped:
            self.stdout.write(f"# skipped (regular expression, not path syntax): {s}")
