"""``trusted_identity failures`` (CONTRACT sections 5 and 8)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from .test_http import start

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("trusted_identity", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_failures_json_lists_newest_first_with_every_field(client, platform, space):
    start(client, platform.api_key, {"userId": "first"}, HTTP_X_APP_VERSION="3.1")
    start(
        client,
        platform.api_key,
        {"userId": "second", "signed": "xyz"},
        HTTP_X_APP_VERSION="3.2",
        HTTP_X_SDK_VERSION="ios/2.0",
    )
    out, _ = run("failures", space.slug, platform.kind, "--json")
    failures = json.loads(out)["failures"]
    assert [f["user_id"] for f in failures] == ["second", "first"]
    assert failures[0] == {
        "at": failures[0]["at"],
        "outcome": "invalid",
        "reason": "malformed",
        "user_id": "second",
        "app_version": "3.2",
        "sdk_version": "ios/2.0",
    }
    assert failures[0]["at"].endswith("Z")
    assert failures[1]["outcome"] == "missing" and failures[1]["reason"] == "missing"
    assert failures[1]["sdk_version"] is None
    assert "xyz" not in out  # never the signature


def test_failures_limit_and_human_output(client, platform, space):
    for n in range(3):
        start(client, platform.api_key, {"userId": f"u{n}"})
    out, _ = run("failures", space.slug, platform.kind, "--limit", "2")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("at ")
    assert lines[1].split()[2] == "UTC"  # one wording of moments (formatting.moment)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "ios"), "space"),
        (("acme", "web"), "platform"),
        (("acme", "ios", "--limit", "0"), "--limit"),
    ],
)
def test_failures_bad_input_is_one_line(platform, args, message):
    with pytest.raises(CommandError) as caught:
        run("failures", *args)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_viewer_of_another_space_may_not_read_the_log(platform, space):
    from .factories import MembershipFactory, SpaceFactory, UserFactory

    stranger = UserFactory(is_staff=True)
    MembershipFactory(space=SpaceFactory(slug="elsewhere"), user=stranger, role="viewer")
    with pytest.raises(CommandError):
        run("--actor", stranger.username, "failures", space.slug, platform.kind)
    MembershipFactory(space=space, user=stranger, role="viewer")
    _out, err = run("--actor", stranger.username, "failures", space.slug, platform.kind)
    assert "No failed starts" in err
