"""URLs for the companion's tests, with an include to check nested route names."""
from django.contrib.auth.decorators import login_required, permission_required, user_passes_test
from django.contrib.auth.mixins import UserPassesTestMixin
from django.views import View
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_protect

from authz_edge_django import ObjectPermissionDenied


def ok(request, **kw):
    return HttpResponse("ok")


@permission_required(["app.view_thing", "app.change_thing"], raise_exception=True)
def perms(request):
    return HttpResponse("ok")


def obj(request, pk):
    if not request.user.has_perm("app.change_thing", obj=pk):
        raise ObjectPermissionDenied("not yours\r\nX-Injected: 1")
    return HttpResponse("ok")


def plain_denied(request):
    raise PermissionDenied("nope")


@csrf_protect
def form(request):
    return HttpResponse("posted")


@permission_required("auth.chnage_user", raise_exception=True)
def typo(request):
    return HttpResponse("ok")


@permission_required("change_user", raise_exception=True)
def no_label(request):
    return HttpResponse("ok")


@permission_required("auth.view_user", raise_exception=True)
def view_users(request):
    return HttpResponse("ok")


def superusers_only(request):
    if not request.user.is_superuser:
        raise PermissionDenied("superusers only")
    return HttpResponse("ok")


def is_operator(user):
    return user.is_staff


@user_passes_test(is_operator)
def operators(request):
    return HttpResponse("ok")


@login_required
def profile(request):
    return HttpResponse("ok")


@permission_required("auth.view_user")
def users_page(request):
    """Without raise_exception: a signed-in user without the permission goes to the login page."""
    return HttpResponse("ok")


def report(request, pk):
    """An object check: `has_perm(perm, obj)`."""
    from django.contrib.auth.models import User

    if not request.user.has_perm("auth.change_user", User(pk=pk)):
        raise PermissionDenied
    return HttpResponse("ok")


class StaffView(UserPassesTestMixin, View):
    raise_exception = True

    def test_func(self):
        return self.request.user.is_staff

    def get(self, request):
        return HttpResponse("ok")


def logout_view(request):
    from django.contrib.auth import logout
    from django.shortcuts import redirect

    logout(request)
    return redirect("/accounts/login/")


def unreadable(request):
    raise PermissionError(13, "Permission denied", "/srv/app/media/uploads/2026/alice-cv.pdf")


nested = [path("items/<int:pk>/", ok)]

urlpatterns = [
    path("ok/<slug:name>/", ok),
    path("perms/", perms),
    path("obj/<int:pk>/", obj),
    path("plain/", plain_denied),
    path("form/", form),
    path("api/", include(nested)),
    path("typo/", typo),
    path("nolabel/", no_label),
    path("users/", view_users),
    path("unreadable/", unreadable),
    path("superusers/", superusers_only),
    path("operators/", operators),
    path("profile/", profile),
    path("users-page/", users_page),
    path("report/<int:pk>/", report),
    path("staff-view/", StaffView.as_view()),
    path("logout/", logout_view),
    path("accounts/login/", ok),
    re_path(r"^legacy/(?P<x>\d+)/$", ok),
]
