"""A report with an owner and a custom `export_report` permission."""
from django.conf import settings
from django.db import models


class Report(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    title = models.CharField(max_length=100)

    class Meta:
        permissions = [("export_report", "Can export a report")]
