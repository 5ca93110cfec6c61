# Which signature forms a platform accepts (plain, either, token) and how long its
# tokens may live (issue 13, CONTRACT section 9).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trusted_identity', '0005_platform_allowed_origins'),
    ]

    operations = [
        migrations.AddField(
            model_name='platform',
            name='signature_form',
            field=models.CharField(choices=[('plain', 'Plain signatures only'), ('either', 'Plain signatures or tokens'), ('token', 'Tokens only')], default='plain', editable=False, help_text='Which forms of signature session starts may carry.', max_length=8, verbose_name='signature form'),
        ),
        migrations.AddField(
            model_name='platform',
            name='token_max_age',
            field=models.PositiveIntegerField(default=86400, editable=False, help_text='The longest lifetime (exp - iat) a token may have.', verbose_name='maximum token age (seconds)'),
        ),
        migrations.AddConstraint(
            model_name='platform',
            constraint=models.CheckConstraint(condition=models.Q(('signature_form__in', ['plain', 'either', 'token'])), name='ti_platform_signature_form_known'),
        ),
        migrations.AddConstraint(
            model_name='platform',
            constraint=models.CheckConstraint(condition=models.Q(('token_max_age__gte', 60), ('token_max_age__lte', 604800)), name='ti_platform_token_max_age_bounded'),
        ),
    ]
