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
