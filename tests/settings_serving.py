"""The example project's settings for a real server under test (tests/test_lean_asgi.py):
counts gathered for a minute, so only the write at the server's stop can save them."""

from project.settings import *  # noqa: F403
from project.settings import TRUSTED_IDENTITY

TRUSTED_IDENTITY = {**TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 60}
