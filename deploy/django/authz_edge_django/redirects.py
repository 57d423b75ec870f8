"""Django's redirects to the login page, which are denials too: `login_required`,
`LoginRequiredMixin`, `LoginRequiredMiddleware` for anonymous users, and `permission_required`
or `user_passes_test` without `raise_exception` for a signed-in user."""

import functools
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.shortcuts import resolve_url


def login_paths():
    """The login page's paths: settings.AUTHZ_EDGE_LOGIN_URLS (for an app whose login page is
    not LOGIN_URL), else LOGIN_URL, resolved (a URL name is allowed)."""
    urls = getattr(settings, "AUTHZ_EDGE_LOGIN_URLS", None) or [settings.LOGIN_URL]
    return _resolved(tuple(str(u) for u in urls))


@functools.lru_cache(maxsize=8)
def _resolved(urls):
    """The paths of `urls`, resolved once per set of settings (not on every redirect)."""
    paths = set()
    for url in urls:
        try:
            paths.add(urlsplit(str(resolve_url(url))).path)
        except Exception:  # a URL name that does not resolve
            continue
    return frozenset(paths)


def is_login_redirect(request, response):
    """A 302 to the login page (its path, or a `next=` parameter), not from the login page
    itself and not a response of a view that changed the session (a sign-in or sign-out)."""
    if response.status_code != 302:
        return False
    location = urlsplit(response.get("Location", ""))
    paths = login_paths()
    to_login = location.path in paths or REDIRECT_FIELD_NAME in parse_qs(location.query)
    if not to_login or request.path in paths:
        return False
    # A view that signed the user in or out changed the session (the cookie itself is written
    # after this middleware, by SessionMiddleware).
    session = getattr(request, "session", None)
    if session is not None and getattr(session, "modified", False):
        return False
    return settings.SESSION_COOKIE_NAME not in response.cookies
