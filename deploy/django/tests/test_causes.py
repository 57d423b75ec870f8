"""What the companion tells of a denial beyond the permission's state: a stale cache, a lagging
replica, an inactive user, an object check, a role test, and redirects to the login page."""
from django.contrib.auth.models import Group, Permission, User
from django.test import TestCase, override_settings

from authz_edge_django import diagnosis, grants

MODEL = "django.contrib.auth.backends.ModelBackend"
RECORDING = "authz_edge_django.backends.RecordingBackend"


def view_user():
    return Permission.objects.using("default").get(
        content_type__app_label="auth", codename="view_user"
    )


class Grants(TestCase):
    databases = {"default", "replica"}

    def setUp(self):
        diagnosis.invalidate()
        grants.forget()
        self.user = User.objects.create_user("u", password="pw")

    def test_a_plain_refusal_says_nothing_of_a_grant(self):
        self.client.force_login(self.user)
        r = self.client.get("/users/")
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=exists")
        self.assertNotIn("X-Authz-Grant", r)

    @override_settings(AUTHENTICATION_BACKENDS=["tests.backends.StaleCacheBackend", RECORDING])
    def test_a_stale_cache_says_the_primary_grants_it_through_a_group(self):
        group = Group.objects.create(name="User viewers")
        group.permissions.add(view_user())
        self.user.groups.add(group)
        self.client.force_login(self.user)
        r = self.client.get("/users/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=stale_cache")
        self.assertEqual(r["X-Authz-Grant"], "group:User viewers")

    @override_settings(AUTHENTICATION_BACKENDS=["tests.backends.StaleCacheBackend", RECORDING])
    def test_answers_are_cached_per_user_and_permission(self):
        self.user.user_permissions.add(view_user())
        self.client.force_login(self.user)
        self.client.get("/users/")
        # Revoked since: the cached answer (a fault) stands for GRANT_SECONDS, no query is made.
        self.user.user_permissions.clear()
        with self.assertNumQueries(0, using="default"):
            state, _, grant = grants.explain(self.user, "auth.view_user", False)
        self.assertEqual((state, grant), ("stale_cache", "direct"))
        grants.forget()
        self.assertEqual(grants.explain(self.user, "auth.view_user", False)[0], "exists")

    def test_a_plain_refusal_is_asked_again_after_a_second(self):
        import time

        self.assertEqual(grants.explain(self.user, "auth.view_user", False)[0], "exists")
        with self.assertNumQueries(0, using="default"):
            grants.explain(self.user, "auth.view_user", False)
        self.user.user_permissions.add(view_user())
        time.sleep(grants.PLAIN_REFUSAL_SECONDS + 0.1)
        self.assertEqual(grants.explain(self.user, "auth.view_user", False)[0], "stale_cache")

    @override_settings(
        AUTHENTICATION_BACKENDS=[MODEL, RECORDING],
        DATABASE_ROUTERS=["tests.backends.ReplicaRouter"],
    )
    def test_a_replica_without_the_grant_is_named(self):
        self.user.user_permissions.add(view_user())
        self.client.force_login(self.user)
        r = self.client.get("/users/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=replica_lag~replica")
        self.assertEqual(r["X-Authz-Grant"], "direct")

    @override_settings(
        AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.AllowAllUsersModelBackend", RECORDING]
    )
    def test_an_inactive_user_who_holds_it(self):
        self.user.user_permissions.add(view_user())
        self.user.is_active = False
        self.user.save()
        self.client.force_login(self.user)
        r = self.client.get("/users/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=inactive_user")
        self.assertEqual(r["X-Authz-Grant"], "direct")

    def test_an_object_check_without_an_object_backend(self):
        self.user.user_permissions.add(Permission.objects.get(codename="change_user"))
        self.client.force_login(self.user)
        r = self.client.get(f"/report/{self.user.pk}/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Kind"], "object")
        self.assertEqual(r["X-Authz-Permission-State"], "auth.change_user=no_object_backend")
        self.assertEqual(r["X-Authz-Grant"], "direct")

    @override_settings(AUTHENTICATION_BACKENDS=[MODEL, "tests.backends.OwnerBackend", RECORDING])
    def test_an_owner_policy_refusing_a_non_owner_is_business_as_usual(self):
        self.client.force_login(self.user)
        self.assertEqual(self.client.get(f"/report/{self.user.pk}/").status_code, 200)
        r = self.client.get(f"/report/{self.user.pk + 1}/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Permission-State"], "auth.change_user=object_denied")
        self.assertNotIn("X-Authz-Grant", r)

    def test_which_backends_implement_object_permissions(self):
        from django.contrib.auth.backends import AllowAllUsersModelBackend, ModelBackend

        from authz_edge_django.backends import RecordingBackend
        from tests.backends import OwnerBackend, StaleCacheBackend

        self.assertFalse(grants.implements_object_permissions(ModelBackend()))
        self.assertFalse(grants.implements_object_permissions(AllowAllUsersModelBackend()))
        self.assertFalse(grants.implements_object_permissions(StaleCacheBackend()))
        self.assertFalse(grants.implements_object_permissions(RecordingBackend()))
        self.assertTrue(grants.implements_object_permissions(OwnerBackend()))


class Roles(TestCase):
    def setUp(self):
        self.user = User.objects.create_user("u", password="pw", is_staff=True)
        self.client.force_login(self.user)

    def test_a_superuser_test_in_the_view_is_named_with_the_flags(self):
        r = self.client.get("/superusers/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Role"], "test=is_superuser; is_superuser=0; is_staff=1; is_active=1")
        self.assertNotIn("X-Authz-Permission", r)

    def test_a_user_passes_test_function_is_named_on_its_redirect(self):
        self.user.is_staff = False
        self.user.save()
        r = self.client.get("/operators/")
        self.assertEqual(r.status_code, 302)
        self.assertEqual(r["X-Authz-Kind"], "permission")
        self.assertEqual(r["X-Authz-User"], str(self.user.pk))
        self.assertEqual(r["X-Authz-Role"], "test=is_operator; is_superuser=0; is_staff=0; is_active=1")

    def test_a_user_passes_test_mixin_is_named_by_its_flag(self):
        self.user.is_staff = False
        self.user.save()
        r = self.client.get("/staff-view/")
        self.assertEqual(r.status_code, 403)
        self.assertEqual(r["X-Authz-Role"], "test=is_staff; is_superuser=0; is_staff=0; is_active=1")

    def test_an_object_refusal_names_no_role(self):
        r = self.client.get("/obj/1/")
        self.assertEqual(r.status_code, 403)
        self.assertNotIn("X-Authz-Role", r)


class LoginRedirects(TestCase):
    def test_an_anonymous_visitor_sent_to_sign_in(self):
        r = self.client.get("/profile/")
        self.assertEqual(r.status_code, 302)
        self.assertEqual(r["Location"], "/accounts/login/?next=/profile/")
        self.assertEqual(r["X-Authz-Kind"], "login")
        self.assertEqual(r["X-Authz-Route"], "/profile/")
        self.assertNotIn("X-Authz-Anonymous", r)

    def test_a_visitor_whose_session_is_unknown(self):
        self.client.cookies["sessionid"] = "x" * 32
        r = self.client.get("/profile/")
        self.assertEqual(r["X-Authz-Kind"], "login")
        self.assertEqual(r["X-Authz-Anonymous"], "session_unknown")

    def test_a_signed_in_user_refused_by_permission_required(self):
        user = User.objects.create_user("u", password="pw")
        self.client.force_login(user)
        r = self.client.get("/users-page/")
        self.assertEqual(r.status_code, 302)
        self.assertEqual(r["X-Authz-Kind"], "permission")
        self.assertEqual(r["X-Authz-Permission"], "auth.view_user")
        self.assertEqual(r["X-Authz-Permission-State"], "auth.view_user=exists")

    def test_the_login_page_a_logout_and_other_redirects_are_not_denials(self):
        user = User.objects.create_user("u", password="pw")
        self.client.force_login(user)
        r = self.client.get("/logout/")
        self.assertEqual(r.status_code, 302)
        self.assertNotIn("X-Authz-Kind", r)
        self.assertNotIn("X-Authz-Kind", self.client.get("/ok/x"))  # the slash redirect

    @override_settings(AUTHZ_EDGE_LOGIN_URLS=["/sso/start/"], LOGIN_URL="/sso/start/")
    def test_a_login_page_that_is_not_django_s(self):
        r = self.client.get("/profile/")
        self.assertEqual(r["Location"], "/sso/start/?next=/profile/")
        self.assertEqual(r["X-Authz-Kind"], "login")
        from authz_edge_django import redirects

        self.assertEqual(redirects.login_paths(), {"/sso/start/"})


class InactiveSignedOut(TestCase):
    def test_a_deactivated_user_signed_out_by_django_is_named(self):
        user = User.objects.create_user("u", password="pw")
        self.client.force_login(user)
        self.assertEqual(self.client.get("/profile/").status_code, 200)
        user.is_active = False
        user.save()
        r = self.client.get("/profile/")
        self.assertEqual(r.status_code, 302)
        self.assertEqual(r["X-Authz-Kind"], "login")
        self.assertEqual(r["X-Authz-Anonymous"], "user_inactive")

    def test_a_deleted_user_is_still_an_invalidated_session(self):
        user = User.objects.create_user("u", password="pw")
        self.client.force_login(user)
        user.delete()
        self.assertEqual(self.client.get("/profile/")["X-Authz-Anonymous"], "session_invalidated")
