"""Release v2: the approve_report permission (creates its row when migrated)."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("reports", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="report",
            options={
                "permissions": [
                    ("export_report", "Can export a report"),
                    ("approve_report", "Can approve a report"),
                ]
            },
        ),
    ]
