"""Fixtures the admin tests share: an owner of the ``acme`` space, and a client logged in
as that owner.
"""

import pytest

from trusted_identity.models import Role

from ..factories import MembershipFactory, UserFactory


@pytest.fixture
def owner(space):
    user = UserFactory(username="olivia")
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
