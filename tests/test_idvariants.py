"""The id variants the signature tester tries (``trusted_identity.idvariants``): the usual
mistakes, each once, a bounded list whatever the id."""

import time
import unicodedata

import pytest

from trusted_identity.idvariants import MAX_VARIANTS, id_variants


def ids_of(user_id):
    return {v.user_id: v.change for v in id_variants(user_id)}


def test_whitespace_and_line_ends_both_ways():
    found = ids_of("user-1")
    assert found["user-1 "] == "with a trailing space"
    assert found["user-1\n"] == "with a trailing newline"
    assert "\\r\\n" in found["user-1\r\n"]
    assert ids_of("user-1 ")["user-1"] == "without its trailing whitespace"
    assert ids_of("\tuser-1")["user-1"] == "without its leading whitespace"
    assert ids_of(" user-1\n")["user-1"] == "without its leading and trailing whitespace"


def test_case_and_unicode_normalisation():
    found = ids_of("User-1")
    assert found["user-1"] == "in lower case" and found["USER-1"] == "in upper case"
    assert ids_of("Straße")["strasse"] == "case-folded"
    composed = "caf\u00e9"
    decomposed = unicodedata.normalize("NFD", composed)
    assert ids_of(composed)[decomposed].startswith("NFD-normalised")
    assert ids_of(decomposed)[composed].startswith("NFC-normalised")


@pytest.mark.parametrize(
    ("given", "spellings"),
    [
        ("42", {"42.0", "042", "4.2e1"}),
        ("42.0", {"42", "042", "4.2e1"}),
        ("042", {"42", "42.0"}),
        ("4.2e1", {"42", "42.0", "042"}),
        ("-7", {"-7.0"}),
        ("12.50", {"12.5", "1.25e1"}),
    ],
)
def test_another_spelling_of_the_same_number(given, spellings):
    found = ids_of(given)
    assert spellings <= set(found)
    assert all("same number" in found[s] for s in spellings)


@pytest.mark.parametrize("given", ["1e999999", "nan", "inf", "1" * 41, "4x2", "0x2a", ".", "-"])
def test_what_is_no_number_or_too_big_gets_no_number_spelling(given):
    assert not any("same number" in change for change in ids_of(given).values())


def test_json_quoted_and_unquoted_url_encoded_and_decoded():
    found = ids_of("a b/1")
    assert found['"a b/1"'].startswith("JSON-quoted")
    assert found["a%20b%2F1"] == "URL-encoded"
    assert found["a+b%2F1"].startswith("URL-encoded as a form value")
    assert ids_of('"user-1"')["user-1"] == "without its JSON quotes"
    assert ids_of("a%20b")["a b"] == "URL-decoded"
    assert ids_of("a+b")["a b"].startswith("URL-decoded as a form value")


def test_never_the_id_itself_never_twice_never_empty_and_bounded():
    for given in ("user-1", "42", " User-1\n", "Ünïcödé 42", '"x"', "a+b%20c", "   "):
        variants = id_variants(given)
        ids = [v.user_id for v in variants]
        assert given not in ids and "" not in ids
        assert len(ids) == len(set(ids)) <= MAX_VARIANTS


def test_work_is_linear_in_the_id_not_per_character():
    """A long id makes the same few variants, each in one pass (no per-character loop)."""
    long_id = "é1 " * 300
    started = time.perf_counter()
    variants = id_variants(long_id)
    assert time.perf_counter() - started < 0.5
    assert len(variants) <= MAX_VARIANTS
