"""The example project's demo_setup (``make run``): a project command, DEBUG only."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command, get_commands

from trusted_identity.models import Platform, Space


def test_demo_setup_belongs_to_the_example_project():
    assert get_commands()["demo_setup"] == "project"


def test_demo_setup_makes_the_demo_once(db, settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("demo_setup", stdout=out)
    call_command("demo_setup", stdout=StringIO())  # idempotent
    assert get_user_model().objects.get(username="admin").check_password("admin")
    space = Space.objects.get(slug="demo")
    kinds = sorted(Platform.objects.filter(space=space).values_list("kind", flat=True))
    assert kinds == ["android", "ios", "web"]
    assert "(login: admin / admin)" in out.getvalue()
    for platform in Platform.objects.filter(space=space):
        assert platform.api_key in out.getvalue()


def test_demo_setup_refuses_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo_setup", stdout=StringIO())
    assert not get_user_model().objects.filter(username="admin").exists()
