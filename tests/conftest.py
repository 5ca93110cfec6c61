import json
from pathlib import Path

import pytest
from django.core.cache import caches

from trusted_identity import services
from trusted_identity.keyring import reset_key_ring

from .factories import PlatformFactory, SpaceFactory, SuperuserFactory

VECTORS_FILE = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "node-hmac-sha256.json"
LOCAL_VECTORS_FILE = Path(__file__).resolve().parent / "data" / "node-hmac-sha256.json"


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with an empty cache and key ring: no state leaks between tests."""
    for alias in caches:
        caches[alias].clear()
    reset_key_ring()
    services.clear_plaintext_cache()
    yield
    for alias in caches:
        caches[alias].clear()


@pytest.fixture
def node_vectors():
    """The vectors computed with Node's crypto (shared/, or the copy kept in tests/data/)."""
    path = VECTORS_FILE if VECTORS_FILE.exists() else LOCAL_VECTORS_FILE
    return json.loads(path.read_text(encoding="utf-8"))["vectors"]


@pytest.fixture
def space(db):
    return SpaceFactory(slug="acme", name="Acme")


@pytest.fixture
def platform(space):
    return PlatformFactory(space=space, kind="ios")


@pytest.fixture
def superuser(db):
    return SuperuserFactory(username="root")


@pytest.fixture
def cli_actor(db):
    return services.get_cli_actor()
