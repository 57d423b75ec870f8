"""URLs for the companion's tests, with an include to check nested route names."""
from django.contrib.auth.decorators import permission_required
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
    re_path(r"^legacy/(?P<x>\d+)/$", ok),
]
