"""Property-based fuzzing of the sign view: any query string and header, signed in or
not, and too many parameters (the hardening suite's style: never a 500 or HTML).
"""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from django.http import QueryDict
from hypothesis import given
from hypothesis import strategies as st

from trusted_identity import signing
from trusted_identity.conf import app_settings
from trusted_identity.models import Platform, PlatformKind
from trusted_identity.services import platform_secrets

from .factories import UserFactory
from .test_fuzz import ERROR_CODES, SIGN, case, check_answer, debug, examples, world  # noqa: F401

# ---------------------------------------------------------------- sign view


@pytest.fixture
def signer(db):
    return UserFactory(username="signer", is_staff=False)


query_values = (
    st.text(max_size=20)
    | st.sampled_from([*PlatformKind.values, "acme", "other", "", "IOS", "ios ", "\x00"])
    | st.integers(125, 135).map(lambda n: "i" * n)
)
query_pairs = st.lists(
    st.tuples(
        st.sampled_from(["platform", "space", "x", "Platform", ""]) | st.text(max_size=6),
        query_values,
    ),
    max_size=5,
)


def encode_query(pairs, raw_tail: str) -> str:
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    return encoded + raw_tail


def expected_sign(query: str, header: str | None, signed_in: bool, world) -> tuple[int, str]:
    """The contract's answer of ``GET <mount>/sign/`` (CONTRACT section 4, docs/http.md)."""
    if not signed_in:
        return 401, "not_authenticated"
    params = QueryDict(query)

    def parameter(name, fallback=None):
        values = params.getlist(name)
        if len(values) > 1:
            return "error"
        value = values[0] if values else fallback
        if value is not None and (not value or len(value) > 128):
            return "error"
        return value

    kind = parameter("platform", header)
    if kind is None or kind == "error":
        return 400, "invalid_request"
    slug = parameter("space")
    if slug is None or slug == "error":
        return 400, "invalid_request"
    exists = (
        Platform.objects.filter(space__slug=slug, kind=kind).exists()
        if "\x00" not in (slug + kind)
        else False
    )
    if kind not in PlatformKind.values or not exists:
        return 404, "platform_not_found"
    if slug not in app_settings.SIGNING_SPACES:  # only the spaces this site serves
        return 404, "platform_not_found"
    return 200, kind


@examples(350)
@given(
    pairs=query_pairs,
    raw_tail=st.sampled_from(["", "&", "&&", "=", "%", "%zz", "%ff%fe", "&platform", ";x=1", "+"])
    | st.text(alphabet=string.printable, max_size=10),
    header=st.none() | query_values,
    signed_in=st.booleans(),
    method=st.sampled_from(["GET", "GET", "HEAD"]),
)
def test_sign_view_any_query_and_header(
    client, world, signer, debug, pairs, raw_tail, header, signed_in, method
):
    case("sign-view")
    if signed_in:
        client.force_login(signer)
    else:
        client.logout()
    query = encode_query(pairs, raw_tail)
    extra = {"QUERY_STRING": query}
    if header is not None:
        extra["HTTP_X_TRUSTED_IDENTITY_PLATFORM"] = header
    response = client.generic(method, SIGN, **extra)
    answer = check_answer(response, allow_empty=method == "HEAD")
    status, detail = expected_sign(query, header, signed_in, world)
    assert response.status_code == status, (answer, status, detail, query)
    if method == "HEAD":
        return
    if status == 200:
        kind = detail
        secret = platform_secrets.current_secret_row(world["platforms"][kind]).get_secret()
        assert answer == {
            "userId": str(signer.pk),
            "platform": kind,
            "signed": signing.sign(secret, str(signer.pk)),
        }
        assert response["Cache-Control"] == "no-store"
    else:
        assert answer["error"]["code"] == detail


@examples(20)
@given(extra_fields=st.integers(990, 1200))
def test_sign_view_with_too_many_parameters(client, world, signer, debug, extra_fields):
    case("sign-view-many-fields")
    client.force_login(signer)
    query = "&".join(f"f{i}=1" for i in range(extra_fields)) + "&platform=ios&space=acme"
    response = client.get(SIGN, QUERY_STRING=query)
    answer = check_answer(response)
    if extra_fields + 2 > 1000:  # DATA_UPLOAD_MAX_NUMBER_FIELDS
        assert response.status_code == 400 and answer["error"]["code"] == "invalid_request"
    else:
        assert response.status_code == 200
