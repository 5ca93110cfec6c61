"""Admin login throttling in the example project, with django-axes (issue 9, finding 10).

The test settings turn Axes off (Django's ``Client.login()`` authenticates without a
request, which Axes refuses); these tests turn it on and log in through the real admin
login form, as a person or a password-guessing script would.
"""

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from .factories import PASSWORD, SuperuserFactory, UserFactory

LOGIN = reverse("admin:login")


@pytest.fixture
def axes(settings, db):
    settings.AXES_ENABLED = True
    return settings


def log_in(client, username, password, address="203.0.113.5"):
    """POST the admin login form; whether the client is now logged in, and the answer."""
    response = client.post(
        LOGIN,
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )
    return "_auth_user_id" in client.session, response


def test_forty_wrong_passwords_lock_the_right_one_out(axes):
    SuperuserFactory(username="root")
    client = Client()
    limit = django_settings.AXES_FAILURE_LIMIT
    statuses = []
    for attempt in range(40):
        logged_in, response = log_in(client, "root", f"guess-{attempt}")
        assert not logged_in
        statuses.append(response.status_code)
    assert statuses[: limit - 1] == [200] * (limit - 1)  # the form again, with its error
    assert set(statuses[limit:]) == {429}  # locked out
    logged_in, response = log_in(client, "root", PASSWORD)
    assert not logged_in
    assert response.status_code == 429
    assert client.get("/admin/", REMOTE_ADDR="203.0.113.5").status_code == 302  # to the login


def test_the_lockout_is_per_username_and_address(axes):
    """Keyed on both, as configured: the locked pair stays locked, and an attacker can't
    lock a user out from elsewhere, nor lock other users out from their own address."""
    SuperuserFactory(username="root")
    UserFactory(username="alice")
    for attempt in range(django_settings.AXES_FAILURE_LIMIT):
        log_in(Client(), "root", f"guess-{attempt}")
    assert log_in(Client(), "root", PASSWORD)[0] is False
    assert log_in(Client(), "alice", PASSWORD)[0] is True  # another user, same address
    assert log_in(Client(), "root", PASSWORD, address="198.51.100.7")[0] is True


def test_a_right_password_before_the_limit_resets_the_count(axes):
    SuperuserFactory(username="root")
    limit = django_settings.AXES_FAILURE_LIMIT
    for attempt in range(limit - 1):
        log_in(Client(), "root", f"guess-{attempt}")
    assert log_in(Client(), "root", PASSWORD)[0] is True
    for attempt in range(limit - 1):
        log_in(Client(), "root", f"again-{attempt}")
    assert log_in(Client(), "root", PASSWORD)[0] is True


def test_the_lockout_keys_on_the_address_the_app_trusts(axes):
    """Behind nginx, forged leftmost X-Forwarded-For entries don't reset the count."""
    axes.TRUSTED_IDENTITY = {
        **axes.TRUSTED_IDENTITY,
        "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR",
        "PROXY_COUNT": 1,
    }
    SuperuserFactory(username="root")
    client = Client()
    for attempt in range(django_settings.AXES_FAILURE_LIMIT + 2):
        client.post(
            LOGIN,
            {"username": "root", "password": f"guess-{attempt}", "next": "/admin/"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}, 203.0.113.5",
        )
    response = client.post(
        LOGIN,
        {"username": "root", "password": PASSWORD, "next": "/admin/"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="192.0.2.200, 203.0.113.5",
    )
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_test_settings_keep_axes_off_for_client_login(db):
    """The rest of the suite logs in with Client.login(), which Axes would refuse."""
    UserFactory(username="bob")
    assert Client().login(username="bob", password=PASSWORD)
