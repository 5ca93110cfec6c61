"""Migrations that touch secrets: run forwards and backwards on real rows."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from trusted_identity.keyring import get_key_ring
from trusted_identity.models import PlatformSecret

APP = "trusted_identity"
BEFORE_ROW_BINDING = [(APP, "0001_initial")]
ROW_BINDING = [(APP, "0002_verification_generation_row_binding")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes(APP)


@pytest.mark.django_db(transaction=True)
def test_row_binding_reencrypts_existing_secrets_and_back():
    ring = get_key_ring()
    try:
        apps = _migrate(BEFORE_ROW_BINDING)
        Space = apps.get_model(APP, "Space")
        Platform = apps.get_model(APP, "Platform")
        OldSecret = apps.get_model(APP, "PlatformSecret")
        space = Space.objects.create(slug="legacy", name="Legacy")
        platform = Platform.objects.create(space=space, kind="ios", api_key="tik_legacy")
        legacy_ad = f"trusted_identity.platformsecret:platform={platform.pk}".encode()
        row = OldSecret.objects.create(
            platform=platform, ciphertext=ring.encrypt("tis_ios_legacy", legacy_ad)
        )

        # The historical model: later migrations add columns the current one reads.
        migrated = _migrate(ROW_BINDING).get_model(APP, "PlatformSecret").objects.get(pk=row.pk)
        bound = PlatformSecret.associated_data(platform.pk, row.pk)
        assert ring.decrypt(migrated.ciphertext, bound) == "tis_ios_legacy"
        assert migrated.ciphertext != row.ciphertext

        apps = _migrate(BEFORE_ROW_BINDING)
        restored = apps.get_model(APP, "PlatformSecret").objects.get(pk=row.pk)
        assert ring.decrypt(restored.ciphertext, legacy_ad) == "tis_ios_legacy"
    finally:
        _migrate(_latest())


COMPOSITE_KEYS = [(APP, "0004_counts_retention")]


@pytest.mark.django_db(transaction=True)
def test_the_counts_move_to_their_natural_key_and_back():
    try:
        apps = _migrate([(APP, "0003_staff_grant")])
        Space = apps.get_model(APP, "Space")
        Platform = apps.get_model(APP, "Platform")
        OldCount = apps.get_model(APP, "OutcomeCount")
        platform = Platform.objects.create(
            space=Space.objects.create(slug="counts", name="Counts"), kind="ios", api_key="tik_c"
        )
        hour = timezone.now().replace(minute=0, second=0, microsecond=0)
        OldCount.objects.create(platform=platform, hour=hour, outcome="valid", count=41)
        OldCount.objects.create(platform=platform, hour=hour, outcome="missing", count=1)

        apps = _migrate(COMPOSITE_KEYS)
        NewCount = apps.get_model(APP, "OutcomeCount")
        rows = set(NewCount.objects.values_list("platform_id", "hour", "outcome", "count"))
        assert rows == {(platform.pk, hour, "valid", 41), (platform.pk, hour, "missing", 1)}
        assert NewCount._meta.pk.name == "pk"  # the composite key, no surrogate id

        apps = _migrate([(APP, "0003_staff_grant")])
        back = apps.get_model(APP, "OutcomeCount").objects.values_list("outcome", "count")
        assert set(back) == {("valid", 41), ("missing", 1)}
    finally:
        _migrate(_latest())


RECORDS = [(APP, "0008_policy_records")]
HISTORY = [(APP, "0009_enforcement_history_from_log")]


@pytest.mark.django_db(transaction=True)
def test_old_enforcement_log_entries_become_policy_changes_and_back():
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    from .factories import UserFactory

    try:
        apps = _migrate(RECORDS)
        Space = apps.get_model(APP, "Space")
        Platform = apps.get_model(APP, "Platform")
        space = Space.objects.create(slug="old", name="Old")
        ios = Platform.objects.create(space=space, kind="ios", api_key="tik_old_ios")
        web = Platform.objects.create(space=space, kind="web", api_key="tik_old_web")
        platform_type = ContentType.objects.get_or_create(app_label=APP, model="platform")[0]
        alice = UserFactory(username="alice")
        cli = UserFactory(username="trusted-identity-cli", is_active=False)

        def log(user, object_id, message):
            LogEntry.objects.create(
                user=user,
                content_type=platform_type,
                object_id=str(object_id),
                object_repr="old/x",
                action_flag=CHANGE,
                change_message=message,
            )

        log(alice, ios.pk, "Turned enforcement on.")
        log(alice, ios.pk, "Rotated the secret; previous secret grace: 1 day.")  # not copied
        log(
            cli,
            ios.pk,
            "Turned enforcement on below the readiness threshold (12.50% valid); "
            "override reason: launch; day 2 [command line, OS user ops]",
        )
        log(cli, web.pk, "Turned enforcement off. [command line]")
        log(
            alice,
            web.pk,
            "Turned enforcement on without enough starts to tell (7 identified users); "
            "override reason: hotfix for [OPS-12]",
        )
        log(alice, 999999, "Turned enforcement on.")  # a platform since deleted: skipped

        apps = _migrate(HISTORY)
        Change = apps.get_model(APP, "PolicyChange")
        rows = list(
            Change.objects.order_by("pk").values_list(
                "platform_id", "new_value", "actor_name", "door", "detail", "override_reason"
            )
        )
        assert rows == [
            (ios.pk, "on", "alice", "admin", "", ""),
            (
                ios.pk,
                "on",
                "trusted-identity-cli",
                "cli",
                "command line, OS user ops",
                "launch; day 2",
            ),
            (web.pk, "off", "trusted-identity-cli", "cli", "command line", ""),
            # The old prose was ambiguous: the reason lost its bracketed end (documented).
            (web.pk, "on", "alice", "admin", "OPS-12", "hotfix for"),
        ]
        overridden = Change.objects.filter(overridden=True).order_by("pk")
        assert [(c.readiness, c.readiness_count, c.readiness_share) for c in overridden] == [
            ("not_ready", None, 0.125),
            ("not_enough_starts", 7, None),
        ]
        assert all(Change.objects.values_list("imported_from_log", flat=True))
        recorded = Change.objects.create(
            platform_id=ios.pk, setting="enforcement", new_value="off", actor_name="x", door="cli"
        )

        apps = _migrate(RECORDS)
        left = apps.get_model(APP, "PolicyChange").objects.values_list("pk", flat=True)
        assert list(left) == [recorded.pk]  # only the copies are taken back
    finally:
        _migrate(_latest())


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree():
    """A model change without its migration fails here (``makemigrations --check``)."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    try:
        call_command("makemigrations", APP, "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail("the models changed without a migration:\n" + out.getvalue())
