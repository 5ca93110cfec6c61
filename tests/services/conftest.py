"""Fixtures of the service-layer tests."""

import pytest

from ..factories import (
    PlatformFactory,
)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """``with commit():`` runs on-commit callbacks at the end, as a commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def other_platform(space):
    return PlatformFactory(space=space, kind="android")
