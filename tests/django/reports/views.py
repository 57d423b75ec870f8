"""Views for the end-to-end test: pages, forwarded headers, and every kind of denial."""
import json
import os

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.conf import settings
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Report

try:
    from authz_edge_django import ObjectPermissionDenied
except ImportError:  # the app also runs without the companion
    ObjectPermissionDenied = PermissionDenied


def home(request):
    return HttpResponse("home")


def healthz(request):
    return HttpResponse("ok")


def whoami(request):
    return JsonResponse(
        {
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "x_forwarded_for": request.META.get("HTTP_X_FORWARDED_FOR"),
            "x_real_ip": request.META.get("HTTP_X_REAL_IP"),
            "request_id": request.META.get("HTTP_X_REQUEST_ID"),
            "secure": request.is_secure(),
            "host": request.get_host(),
            "authz_headers": sorted(k for k in request.META if "AUTHZ" in k or "RELEASE" in k),
            "user": request.user.username if request.user.is_authenticated else None,
        }
    )


def cookies(request):
    """What Django made of the Cookie header: the browser test (tests/browser.rs) asserts it."""
    return JsonResponse(
        {
            "http_cookie": request.META.get("HTTP_COOKIE"),
            "names": sorted(request.COOKIES),
            "user": request.user.username if request.user.is_authenticated else None,
            "secure": request.is_secure(),
        }
    )


@login_required
def profile(request):
    return HttpResponse(f"profile of {request.user.username}")


def form(request):
    if request.method == "POST":
        return HttpResponse("posted " + json.dumps(request.POST.get("value")))
    return HttpResponse("form")


@permission_required("reports.export_report", raise_exception=True)
def report_export(request, pk):
    report = get_object_or_404(Report, pk=pk)
    return HttpResponse(f"export of {report.title}")


def report_detail(request, pk):
    report = get_object_or_404(Report, pk=pk)
    if report.owner_id != request.user.pk:
        raise ObjectPermissionDenied("not your report")
    return HttpResponse(report.title)


def report_edit(request, pk):
    """An object check: `has_perm(perm, report)`, which ModelBackend alone always refuses."""
    report = get_object_or_404(Report, pk=pk)
    if not request.user.has_perm("reports.change_report", report):
        raise PermissionDenied
    return HttpResponse(f"editing {report.title}")


@permission_required("reports.export_report")
def report_print(request, pk):
    """An HTML page behind permission_required without raise_exception: a signed-in user who
    lacks the permission is sent to the login page."""
    report = get_object_or_404(Report, pk=pk)
    return HttpResponse(f"<html><body>{report.title}</body></html>")


def staff_only(request):
    if not request.user.is_superuser:
        raise PermissionDenied("superusers only")
    return HttpResponse("staff")


class ItemList(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"items": [1, 2, 3]})


# A deploy may get the codename wrong (APPROVE_PERMISSION), as a typo or without its app label.
APPROVE_PERMISSION = os.environ.get("APPROVE_PERMISSION", "reports.approve_report")


@permission_required(APPROVE_PERMISSION, raise_exception=True)
def report_approve(request, pk):
    """New in release v2: its permission comes from a migration that may not have been run."""
    return HttpResponse("approved")


class Me(APIView):
    """Signed-in users by session or token; 401 (with WWW-Authenticate: Token) otherwise."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"user": request.user.username})


_uploads = 0


@csrf_exempt
def upload(request):
    """Stores the body under MEDIA_ROOT/uploads/ (a PermissionError when the deploy left the
    directory to another user)."""
    global _uploads
    _uploads += 1
    name = os.path.join(settings.MEDIA_ROOT, "uploads", f"{os.getpid()}-{_uploads}.bin")
    with open(name, "wb") as f:
        f.write(request.body)
    return HttpResponse("stored")


# Responses for the buffering and compression tests (tests/buffering_e2e.rs).

def big(request, mib):
    """`mib` MiB of bytes in one response with a length, as a large export would be."""
    return HttpResponse(b"x" * (mib * 1024 * 1024), content_type="application/octet-stream")


def tiny(request):
    return HttpResponse(b"ok", content_type="text/plain")


def events(request):
    """Server-sent events: the first at once; the second only after the test has seen the
    first and created the file named by `?flag=` (or after 30 s, saying so)."""
    import time
    from django.http import StreamingHttpResponse

    flag = request.GET["flag"]

    def stream():
        yield b"data: first\n\n"
        for _ in range(300):
            if os.path.exists(flag):
                yield b"data: second\n\n"
                return
            time.sleep(0.1)
        yield b"data: timed out\n\n"

    if request.GET.get("accel"):
        # Not an event stream by its type: nginx's header alone says stream it.
        resp = StreamingHttpResponse(stream(), content_type="text/plain")
        resp["X-Accel-Buffering"] = "no"
        return resp
    return StreamingHttpResponse(stream(), content_type="text/event-stream")


def page(request):
    """About 20 KiB of HTML (or the type in `?type=`), with what a test asks for: `?small=1`
    (under 1 KiB), `?encoded=1` (already gzipped), `?no_transform=1`, `?status=`, `?etag=`,
    `?vary=`, `?stream=1` (chunked: no length)."""
    import gzip
    from django.http import StreamingHttpResponse

    rows = "".join(
        f"<tr><td>report {i}</td><td class=\"state\">approved by reviewer {i % 7}</td></tr>\n"
        for i in range(300)
    )
    body = ("<!doctype html><html><body><table>\n" + rows + "</table></body></html>\n").encode()
    if request.GET.get("small"):
        body = b"<p>short</p>"
    content_type = request.GET.get("type", "text/html; charset=utf-8")
    status = int(request.GET.get("status", "200"))
    if request.GET.get("stream"):
        resp = StreamingHttpResponse(iter([body[:5000], body[5000:]]), content_type=content_type)
    else:
        resp = HttpResponse(b"" if status in (204, 304) else body, content_type=content_type,
                            status=status)
    if request.GET.get("encoded"):
        resp.content = gzip.compress(body)
        resp["Content-Encoding"] = "gzip"
    if request.GET.get("no_transform"):
        resp["Cache-Control"] = "public, no-transform"
    if request.GET.get("etag"):
        resp["ETag"] = request.GET["etag"]
    if request.GET.get("vary"):
        resp["Vary"] = request.GET["vary"]
    if request.GET.get("range"):
        resp.status_code = 206
        resp["Content-Range"] = f"bytes 0-{len(body) - 1}/{len(body) * 2}"
    return resp
