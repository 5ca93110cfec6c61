"""``manage.py demo_setup``: the demo space and admin login that ``make run`` prints.

A command of the example project, not of the reusable app: a site that installs
``trusted_identity`` never gets a command that makes an ``admin``/``admin`` login.
Idempotent: running it again changes nothing but prints the same instructions.
Refuses to run with DEBUG off, so a production database never gets a demo login.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from trusted_identity.models import Platform, Space
from trusted_identity.services import spaces

DEMO_PLATFORMS = ("web", "ios", "android")


class Command(BaseCommand):
    help = "Create (idempotently) a demo superuser and a demo space with web, ios and android."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("DEMO_USERNAME", "admin"))
        parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "admin"))
        parser.add_argument("--space", default="demo")
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_setup only runs with DEBUG on (it creates a known login)")
        user_model = get_user_model()
        user, created = user_model._default_manager.get_or_create(
            **{user_model.USERNAME_FIELD: options["username"]},
            defaults={"is_staff": True, "is_superuser": True},
        )
        if created:
            user.set_password(options["password"])
            user.save()
        space = Space.objects.filter(slug=options["space"]).first()
        if space is None:
            space = spaces.create_space(options["space"], "Demo space")
        for kind in DEMO_PLATFORMS:
            if not Platform.objects.filter(space=space, kind=kind).exists():
                spaces.add_platform(space, kind)
        url = f"http://127.0.0.1:{options['port']}"
        password = (
            options["password"]
            if created or user.check_password(options["password"])
            else "(the password you set)"
        )
        lines = [
            "",
            "Trusted Identity demo is ready.",
            f"  Admin:     {url}/admin/  (login: {options['username']} / {password})",
            f"  Settings:  {url}/admin/trusted_identity/space/{space.pk}/trusted-identity/",
            f"  Sessions:  POST {url}/trusted-identity/v1/sessions  with header X-Api-Key:",
            *(
                f"    {p.kind:<8} {p.api_key}"
                for p in Platform.objects.filter(space=space).order_by("kind")
            ),
            "  Secrets:   the admin settings page (Reveal), or "
            f"`manage.py trusted_identity show-secret {space.slug} web`",
            "",
        ]
        self.stdout.write("\n".join(lines))
