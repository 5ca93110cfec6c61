"""The installation's key for hashing user ids into the distinct-user sketches.

Made here with a random value, so every process reads one that exists (it would be
made on first use otherwise). The sketches written before it were hashed without a
key: they stay valid counts of their own days, but a user counted on both sides of
this migration counts twice within the readiness window (at most 7 days).
"""

import secrets

from django.db import migrations, models

import trusted_identity.models.counts


def make_key(apps, schema_editor):
    SketchKey = apps.get_model("trusted_identity", "SketchKey")
    SketchKey.objects.using(schema_editor.connection.alias).get_or_create(
        pk=1, defaults={"key": secrets.token_bytes(32)}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("trusted_identity", "0010_dailydetailcount_max_error"),
    ]

    operations = [
        migrations.CreateModel(
            name="SketchKey",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(
                        default=1, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "key",
                    models.BinaryField(default=trusted_identity.models.counts._new_sketch_key),
                ),
            ],
            options={
                "verbose_name": "distinct-user hashing key",
                "verbose_name_plural": "distinct-user hashing key",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("id", 1)), name="ti_one_sketch_key"
                    )
                ],
            },
        ),
        migrations.RunPython(make_key, migrations.RunPython.noop, elidable=True),
    ]
