"""factory-boy factories. Platforms are made through the service layer, so every
platform has an API key and an encrypted current secret, as in production."""

from datetime import timezone as dt_timezone

import factory
from django.contrib.auth import get_user_model
from factory.django import DjangoModelFactory

from trusted_identity.countwrites import merge_distinct
from trusted_identity.daytotals import add_day_totals
from trusted_identity.models import (
    DistinctUsers,
    OutcomeCount,
    Platform,
    Role,
    Space,
    SpaceMembership,
)
from trusted_identity.services import spaces
from trusted_identity.sketch import user_hash

#: The key the factories hash their made-up users with (any key counts them alike).
FACTORY_SKETCH_KEY = b"factory users"

PASSWORD = "correct horse battery staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class SuperuserFactory(UserFactory):
    is_superuser = True


class SpaceFactory(DjangoModelFactory):
    class Meta:
        model = Space

    slug = factory.Sequence(lambda n: f"space-{n}")
    name = factory.LazyAttribute(lambda s: f"Space {s.slug}")


class PlatformFactory(DjangoModelFactory):
    class Meta:
        model = Platform

    space = factory.SubFactory(SpaceFactory)
    kind = "web"
    enforced = False

    @classmethod
    def _create(cls, model_class, space, kind, enforced=False, **kwargs):
        platform = spaces.add_platform(space, kind)
        if enforced:
            Platform.objects.filter(pk=platform.pk).update(enforced=True)
            platform.refresh_from_db()
        return platform


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = SpaceMembership

    space = factory.SubFactory(SpaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ADMIN


class OutcomeCountFactory(DjangoModelFactory):
    class Meta:
        model = OutcomeCount
        # The users hook writes sketches, not the row: nothing to save again after it.
        skip_postgeneration_save = True

    platform = factory.SubFactory(PlatformFactory)
    hour = factory.LazyFunction(
        lambda: (
            __import__("django.utils.timezone", fromlist=["now"])
            .now()
            .replace(minute=0, second=0, microsecond=0)
        )
    )
    outcome = "valid"
    count = 1

    @factory.post_generation
    def day_total(obj, create, extracted, **kwargs):
        """Add the row to its day's total, as the count writer does in the same
        transaction (``daytotals``): the window's figures read the totals."""
        if create:
            add_day_totals([(obj.hour, obj.platform_id, obj.outcome, obj.count)])

    @factory.post_generation
    def users(obj, create, extracted, **kwargs):
        """Count the starts' users too, as session start does (readiness judges by distinct
        users): ``users=N`` says how many distinct users made the identified starts (by
        default each its own); visitors are not users."""
        if not create or obj.outcome == "visitor":
            return
        many = obj.count if extracted is None else extracted
        day = obj.hour.astimezone(dt_timezone.utc).date()
        hour = f"{obj.hour:%Y%m%d%H}"
        hashes = {
            user_hash(f"factory-{obj.outcome}-{hour}-{n}", FACTORY_SKETCH_KEY) for n in range(many)
        }
        merge_distinct(obj.platform_id, day, DistinctUsers.IDENTIFIED, hashes)
        if obj.outcome == "valid":
            merge_distinct(obj.platform_id, day, DistinctUsers.VALID, hashes)
