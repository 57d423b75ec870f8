"""Changes made in the middle of an end-to-end scenario, as an admin or a sync job would:

    e2e_change grant GROUP PERMISSION USER...    (creates the group, grants, adds the users)
    e2e_change flags USER... [--superuser 0|1] [--staff 0|1] [--active 0|1]
    e2e_change expire USER...                    (their sessions pass their expiry date)
"""
from django.contrib.auth.models import Group, Permission, User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Grant a permission through a group, or change users' flags."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        grant = sub.add_parser("grant")
        grant.add_argument("group")
        grant.add_argument("permission")
        grant.add_argument("users", nargs="+")
        expire = sub.add_parser("expire")
        expire.add_argument("users", nargs="+")
        flags = sub.add_parser("flags")
        flags.add_argument("users", nargs="+")
        for flag in ("superuser", "staff", "active"):
            flags.add_argument(f"--{flag}", type=int, choices=(0, 1))

    def handle(self, *args, **options):
        users = User.objects.filter(username__in=options["users"])
        if users.count() != len(options["users"]):
            raise SystemExit(f"unknown users in {options['users']}")
        if options["action"] == "expire":
            from datetime import timedelta

            from django.contrib.sessions.models import Session
            from django.utils import timezone

            ids = {str(u.pk) for u in users}
            past = timezone.now() - timedelta(minutes=1)
            for session in Session.objects.all():
                if session.get_decoded().get("_auth_user_id") in ids:
                    session.expire_date = past
                    session.save()
            return
        if options["action"] == "grant":
            app_label, codename = options["permission"].split(".", 1)
            perm = Permission.objects.get(content_type__app_label=app_label, codename=codename)
            group, _ = Group.objects.get_or_create(name=options["group"])
            group.permissions.add(perm)
            for user in users:
                user.groups.add(group)
            return
        for user in users:
            for flag in ("superuser", "staff", "active"):
                value = options[flag]
                if value is not None:
                    setattr(user, f"is_{flag}", bool(value))
            user.save()
