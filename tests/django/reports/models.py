"""A report with an owner and a custom `export_report` permission; release v2 (REPORTS_V2=1)
adds `approve_report`."""
import os

from django.conf import settings
from django.db import models

PERMISSIONS = [("export_report", "Can export a report")]
if os.environ.get("REPORTS_V2") == "1":
    PERMISSIONS.append(("approve_report", "Can approve a report"))


class Report(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    title = models.CharField(max_length=100)

    class Meta:
        permissions = PERMISSIONS
