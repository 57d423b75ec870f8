"""Creates the users, permission grants, report and API token the end-to-end tests use."""
import json

from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from reports.models import Report


class Command(BaseCommand):
    help = "Create e2e fixtures and print them as JSON."

    def handle(self, *args, **options):
        alice = User.objects.create_user("alice", password="alice-pw")
        alice.user_permissions.add(Permission.objects.get(codename="export_report"))
        bob = User.objects.create_user("bob", password="bob-pw")
        User.objects.create_superuser("root", password="root-pw")
        Report.objects.create(owner=alice, title="alice's report")
        token = Token.objects.create(user=bob)
        # More users without extra permissions: u1 .. u6, password "pw".
        for i in range(1, 7):
            User.objects.create_user(f"u{i}", password="pw")
        self.stdout.write(json.dumps({"alice": alice.pk, "bob": bob.pk, "token": token.key}))
