"""Views for the end-to-end test: pages, forwarded headers, and every kind of denial."""
import json

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
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


def staff_only(request):
    if not request.user.is_superuser:
        raise PermissionDenied("superusers only")
    return HttpResponse("staff")


class ItemList(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"items": [1, 2, 3]})


@permission_required("reports.approve_report", raise_exception=True)
def report_approve(request, pk):
    """New in release v2: its permission comes from a migration that was not run."""
    return HttpResponse("approved")
