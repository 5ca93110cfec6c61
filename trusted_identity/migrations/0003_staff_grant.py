# Which users `grant` made staff, so that revoking their last membership takes back
# only that (issue 9).

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trusted_identity', '0002_verification_generation_row_binding'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='StaffGrant',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='trusted_identity_staff_grant', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'staff status given by a grant',
                'verbose_name_plural': 'staff statuses given by grants',
            },
        ),
    ]
