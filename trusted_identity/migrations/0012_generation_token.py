"""The verification generation's token: a random value written with every bump, so that
shared-cache keys tell apart two databases at the same number and a restored backup.
The existing row gets one now (or is made, with one)."""

import secrets

from django.db import migrations, models


def give_a_token(apps, schema_editor):
    VerificationGeneration = apps.get_model("trusted_identity", "VerificationGeneration")
    rows = VerificationGeneration.objects.using(schema_editor.connection.alias)
    row, _ = rows.get_or_create(pk=1)
    row.token = secrets.token_hex(16)
    row.save(update_fields=["token"])


class Migration(migrations.Migration):

    dependencies = [
        ('trusted_identity', '0011_sketch_key'),
    ]

    operations = [
        migrations.AddField(
            model_name='verificationgeneration',
            name='token',
            field=models.CharField(default='', max_length=32),
        ),
        migrations.RunPython(give_a_token, migrations.RunPython.noop),
    ]
