"""The companion's behaviour, through Django's test client."""
from io import StringIO

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, TestCase


class HeadersOnEveryResponse(TestCase):
    def test_route_and_release_on_a_200(self):
        r = self.client.get("/ok/hello/")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r["X-Authz-Route"], "/ok/<slug:name>/")
        self.assertEqual(r["X-App-Release"], "test-release")
        self.assertNotIn("X-Authz-Kind", r)

    def test_nested_include_gives_the_full_route(self):
        r = self.client.get("/api/items/3/")
        self.assertEqual(r["X-Authz-Route"], "/api/items/<int:pk>/")

    def test_regex_route_is_reported_without_anchors(self):
        r = self.client.get("/legacy/12/")
        self.assertEqual(r["X-Authz-Route"], "/legacy/(?P<x>\\d+)/")

    def test_no_route_on_a_404(self):
        r = self.client.get("/missing/")
        self.assertEqual(r.status_code, 404)
        self.assertNotIn("X-Authz-Route", r)


class DenialKinds(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("u", password="pw")

    def test_anonymous_permission_denial_names_the_permissions(self):
        r = self.client.get("/perms/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Kind"], "permission")
        self.assertEqual(r["X-Authz-Permission"], "app.view_thing")
        self.assertNotIn("X-Authz-User", r)

    def test_a_denial_says_when_the_release_began_in_this_process(self):
        import time

        from authz_edge_django import middleware

        r = self.client.get("/perms/")
        since = int(r["X-Authz-Release-Since"])
        self.assertEqual(since, middleware.STARTED)
        self.assertLessEqual(since, int(time.time()))
        self.assertNotIn("X-Authz-Release-Since", self.client.get("/ok/hello/"))

    def test_authenticated_permission_denial_carries_the_user(self):
        self.client.force_login(self.user)
        r = self.client.get("/perms/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-User"], str(self.user.pk))
        self.assertEqual(r["X-Authz-Kind"], "permission")

    def test_object_denial_with_a_clean_reason(self):
        self.client.force_login(self.user)
        r = self.client.get("/obj/5/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Kind"], "object")
        self.assertEqual(r["X-Authz-Permission"], "app.change_thing")
        self.assertEqual(r["X-Authz-Reason"], "not yours??X-Injected: 1")

    def test_plain_permission_denied(self):
        self.client.force_login(self.user)
        r = self.client.get("/plain/")
        self.assertEqual(r["X-Authz-Kind"], "other")
        self.assertEqual(r["X-Authz-Reason"], "nope")
        anonymous = Client().get("/plain/")
        self.assertEqual(anonymous["X-Authz-Kind"], "login")

    def test_csrf_failure(self):
        c = Client(enforce_csrf_checks=True)
        r = c.post("/form/", {"a": "1"})
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Kind"], "csrf")
        self.assertTrue(r["X-Authz-Reason"].startswith("CSRF verification failed"))

    def test_superuser_is_never_denied(self):
        admin = User.objects.create_superuser("root", password="pw")
        self.client.force_login(admin)
        self.assertEqual(self.client.get("/perms/").status_code, 200)


class RoutesCommand(TestCase):
    def test_prints_path_patterns_as_routes(self):
        out = StringIO()
        call_command("authz_routes", stdout=out)
        text = out.getvalue()
        self.assertIn('[[routes]]\npattern = "/ok/<slug:name>/"', text)
        self.assertIn('pattern = "/api/items/<int:pk>/"', text)
        self.assertIn("# skipped (regular expression, not path syntax): ^legacy/", text)


class PermissionStates(TestCase):
    """X-Authz-Permission-State: what the database and the models say of each permission."""

    def setUp(self):
        from authz_edge_django import diagnosis

        diagnosis.invalidate()
        self.user = User.objects.create_user("u", password="pw")
        self.client.force_login(self.user)

    def test_an_existing_permission_not_granted(self):
        r = self.client.get("/users/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=exists")
        self.assertNotIn("X-Authz-Migrations", r)

    def test_a_declared_permission_without_its_row_is_not_migrated(self):
        from django.contrib.auth.models import Permission

        from authz_edge_django import diagnosis

        Permission.objects.filter(content_type__app_label="auth", codename="view_user").delete()
        diagnosis.invalidate()
        r = self.client.get("/users/")
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=not_migrated")

    def test_migrate_refreshes_the_cache(self):
        from django.contrib.auth.models import Permission

        from authz_edge_django import diagnosis

        Permission.objects.filter(content_type__app_label="auth", codename="view_user").delete()
        diagnosis.invalidate()
        r = self.client.get("/users/")
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=not_migrated")
        # `migrate` creates the row and sends post_migrate: the cached state is dropped.
        call_command("migrate", verbosity=0)
        r = self.client.get("/users/")
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=exists")

    def test_a_typo_is_unknown_with_the_nearest_codename(self):
        r = self.client.get("/typo/")
        self.assertEqual(r["X-Authz-Permission-State"], "auth.chnage_user=unknown~auth.change_user")

    def test_a_missing_app_label_is_malformed_with_the_nearest(self):
        r = self.client.get("/nolabel/")
        self.assertEqual(r["X-Authz-Permission-State"], "change_user=malformed~auth.change_user")

    def test_nothing_close_gives_no_hint(self):
        r = self.client.get("/perms/")
        # Django stops at the first permission refused: only that one is reported.
        self.assertEqual(r["X-Authz-Permission-State"], "app.view_thing=unknown")

    def test_a_granted_request_carries_none_of_it(self):
        admin = User.objects.create_superuser("root", password="pw")
        self.client.force_login(admin)
        r = self.client.get("/users/")
        self.assertEqual(r.status_code, 200)
        self.assertNotIn("X-Authz-Permission-State", r)


class WhyAnonymous(TestCase):
    """X-Authz-Anonymous: why Django has no user although the request carried a session."""

    def setUp(self):
        self.user = User.objects.create_user("u", password="pw")

    def test_an_unknown_session_key(self):
        self.client.cookies["sessionid"] = "nosuchsessionkey0123456789abcdef"
        r = self.client.get("/plain/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Kind"], "login")
        self.assertEqual(r["X-Authz-Anonymous"], "session_unknown")

    def test_a_session_signed_with_another_secret_key(self):
        from django.test import override_settings

        with override_settings(SECRET_KEY="the-old-secret-key"):
            self.client.login(username="u", password="pw")
        r = self.client.get("/plain/")
        self.assertEqual(r["X-Authz-Anonymous"], "session_undecodable")

    def test_an_expired_session_is_ordinary_not_undecodable(self):
        from datetime import timedelta

        from django.contrib.sessions.models import Session
        from django.utils import timezone

        self.client.login(username="u", password="pw")
        key = self.client.cookies["sessionid"].value
        Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(minutes=1))
        r = self.client.get("/plain/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Anonymous"], "session_expired")

    def test_an_expired_signed_cookie_session(self):
        from django.test import override_settings

        engine = "django.contrib.sessions.backends.signed_cookies"
        with override_settings(SESSION_ENGINE=engine):
            self.client.login(username="u", password="pw")
        with override_settings(SESSION_ENGINE=engine, SESSION_COOKIE_AGE=-1):
            r = self.client.get("/plain/")
        self.assertEqual(r["X-Authz-Anonymous"], "session_expired")

    def test_a_backend_no_longer_listed(self):
        from django.test import override_settings

        self.client.login(username="u", password="pw")
        with override_settings(AUTHENTICATION_BACKENDS=["authz_edge_django.backends.RecordingBackend"]):
            r = self.client.get("/plain/")
        self.assertEqual(r["X-Authz-Anonymous"], "backend_removed")

    def test_authentication_middleware_missing(self):
        from django.conf import settings
        from django.test import override_settings

        self.client.login(username="u", password="pw")
        without = [m for m in settings.MIDDLEWARE if "AuthenticationMiddleware" not in m]
        with override_settings(MIDDLEWARE=without):
            r = self.client.get("/plain/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Anonymous"], "no_auth_middleware")

    def test_credentials_rejected(self):
        r = self.client.get("/plain/", HTTP_AUTHORIZATION="Bearer nope")
        self.assertEqual(r["X-Authz-Anonymous"], "credentials_rejected")

    def test_nothing_carried_says_nothing(self):
        r = self.client.get("/plain/")
        self.assertNotIn("X-Authz-Anonymous", r)

    def test_a_signed_in_user_says_nothing(self):
        self.client.force_login(self.user)
        r = self.client.get("/plain/")
        self.assertNotIn("X-Authz-Anonymous", r)


class CsrfContext(TestCase):
    def test_scheme_host_and_origin_beside_djangos_reason(self):
        c = Client(enforce_csrf_checks=True)
        r = c.post("/form/", {"a": "1"}, HTTP_ORIGIN="https://testserver")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Kind"], "csrf")
        self.assertIn("Origin checking failed", r["X-Authz-Reason"])
        self.assertEqual(r["X-Authz-Csrf"], "scheme=http host=testserver origin=https://testserver")


class FilesystemPermissionError(TestCase):
    def test_a_permission_error_is_marked_on_its_500_with_the_directory_only(self):
        c = Client(raise_request_exception=False)
        r = c.get("/unreadable/")
        self.assertEqual(r.status_code, 500)
        self.assertEqual(r["X-Authz-Kind"], "filesystem")
        self.assertEqual(r["X-Authz-Path"], "/srv/app/media/uploads")
        import os

        self.assertEqual(r["X-Authz-Run-As"], f"{os.geteuid()}:{os.getegid()}")

    def test_path_prefix_never_names_a_file(self):
        from authz_edge_django.diagnosis import path_prefix

        self.assertEqual(path_prefix("/srv/app/media/a.txt"), "/srv/app/media")
        self.assertEqual(path_prefix("/var/log/app/secret-user.log"), "/var/log/app")
        self.assertIsNone(path_prefix(None))
