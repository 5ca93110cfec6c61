# Retention of the session-start counts (issue 11): hourly counts on their natural
# primary key (platform, hour, outcome) with no surrogate id and no separate foreign-key
# index, daily rollups for hours past HOURLY_RETENTION, a record of prune runs, and on
# PostgreSQL a BRIN index on the hour.
#
# Django can't turn an existing primary key into a composite one in place, so the hourly
# table is rebuilt: the old one is renamed, the new one created under the old name, the
# rows copied over with one INSERT ... SELECT, and the old table dropped. On a large
# install that copy is the long step (run it in a maintenance window, after `prune` has
# run with the previous version if you can).

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

OUTCOMES = [
    ("valid", "Valid signature"),
    ("invalid", "Invalid signature"),
    ("missing", "Missing signature"),
    ("visitor", "Visitor"),
    ("rejected", "Rejected"),
]


def copy_counts(apps, schema_editor, source="LegacyOutcomeCount", target="OutcomeCount"):
    ops = schema_editor.connection.ops
    old = ops.quote_name(apps.get_model("trusted_identity", source)._meta.db_table)
    new = ops.quote_name(apps.get_model("trusted_identity", target)._meta.db_table)
    columns = ", ".join(ops.quote_name(c) for c in ("platform_id", "hour", "outcome", "count"))
    schema_editor.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {old}")


def copy_counts_back(apps, schema_editor):
    copy_counts(apps, schema_editor, source="OutcomeCount", target="LegacyOutcomeCount")


def brin_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX ti_outcomecount_hour_brin ON trusted_identity_outcomecount "
            "USING brin (hour)"
        )


def drop_brin_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS ti_outcomecount_hour_brin")


class Migration(migrations.Migration):
    dependencies = [
        ("trusted_identity", "0003_staff_grant"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="outcomecount",
            name="ti_one_count_per_hour_outcome",
        ),
        migrations.RenameModel("OutcomeCount", "LegacyOutcomeCount"),
        migrations.AlterField(
            model_name="legacyoutcomecount",
            name="platform",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="trusted_identity.platform",
            ),
        ),
        migrations.CreateModel(
            name="OutcomeCount",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "platform",
                        "hour",
                        "outcome",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "platform",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outcome_counts",
                        to="trusted_identity.platform",
                    ),
                ),
                ("hour", models.DateTimeField(verbose_name="hour")),
                ("outcome", models.CharField(choices=OUTCOMES, max_length=16, verbose_name="outcome")),
                ("count", models.PositiveBigIntegerField(default=0, verbose_name="count")),
            ],
            options={
                "verbose_name": "outcome count",
                "verbose_name_plural": "outcome counts",
                "ordering": ["platform_id", "-hour", "outcome"],
            },
        ),
        migrations.RunPython(copy_counts, copy_counts_back),
        migrations.DeleteModel("LegacyOutcomeCount"),
        migrations.RunPython(brin_index, drop_brin_index),
        migrations.CreateModel(
            name="DailyOutcomeCount",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "platform",
                        "day",
                        "outcome",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "platform",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="daily_counts",
                        to="trusted_identity.platform",
                    ),
                ),
                ("day", models.DateField(verbose_name="day")),
                ("outcome", models.CharField(choices=OUTCOMES, max_length=16, verbose_name="outcome")),
                ("count", models.PositiveBigIntegerField(default=0, verbose_name="count")),
            ],
            options={
                "verbose_name": "daily outcome count",
                "verbose_name_plural": "daily outcome counts",
                "ordering": ["platform_id", "-day", "outcome"],
            },
        ),
        migrations.CreateModel(
            name="PruneRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "started_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("hourly_rows_folded", models.PositiveBigIntegerField(default=0)),
                ("daily_rows_deleted", models.PositiveBigIntegerField(default=0)),
            ],
            options={
                "verbose_name": "prune run",
                "verbose_name_plural": "prune runs",
                "ordering": ["-started_at"],
                "get_latest_by": "started_at",
            },
        ),
    ]
