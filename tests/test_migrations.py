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
