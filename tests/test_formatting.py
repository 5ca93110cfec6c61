"""``trusted_identity.formatting``: one wording of shares, counts and moments for the
admin (its template filters) and the CLI's human-readable output."""

from datetime import datetime, timedelta, timezone

from django.template import Context, Template

from trusted_identity.formatting import form_shares, moment, number, percent, visible


def test_percent_has_one_decimal_and_a_dash_for_none():
    assert percent(0.97234) == "97.2%"
    assert percent(1) == "100.0%"
    assert percent(0) == "0.0%"
    assert percent(None) == "—"


def test_number_groups_thousands():
    assert number(3310) == "3,310"
    assert number(7) == "7"
    assert number(None) == "—"


def test_moment_is_utc_to_the_minute():
    paris = timezone(timedelta(hours=1))
    assert moment(datetime(2026, 11, 26, 15, 5, 59, tzinfo=paris)) == "2026-11-26 14:05 UTC"
    assert moment(datetime(2026, 11, 26, 14, 5)) == "2026-11-26 14:05 UTC"
    assert moment(None) == "—"


def test_the_template_filters_say_the_same():
    template = Template(
        "{% load trusted_identity_format %}{{ s|ti_percent }} {{ n|ti_number }} {{ t|ti_moment }}"
    )
    at = datetime(2026, 11, 26, 14, 5, tzinfo=timezone.utc)
    assert template.render(Context({"s": 0.5, "n": 1204, "t": at})) == (
        "50.0% 1,204 2026-11-26 14:05 UTC"
    )
    assert template.render(Context({})) == "— — —"


def test_visible_spells_out_what_would_forge_or_hide_text():
    assert visible("user-42") == "user-42"
    assert visible("Zoë 東京 a b") == "Zoë 東京 a b"
    assert visible("evil\u202egnp.exe") == "evil<U+202E>gnp.exe"
    assert visible("a\x1b[31mred") == "a<U+001B>[31mred"
    assert visible("line\nbreak\x00") == "line<U+000A>break<U+0000>"
    assert visible("zero\u200bwidth\u00a0nbsp") == "zero<U+200B>width<U+00A0>nbsp"


def test_ti_visible_filter_is_still_escaped():
    rendered = Template("{% load trusted_identity_format %}{{ v|ti_visible }}").render(
        Context({"v": "<b>\u202e</b>"})
    )
    assert rendered == "&lt;b&gt;&lt;U+202E&gt;&lt;/b&gt;"


def test_form_shares_says_each_counted_form_of_the_valid_users():
    assert form_shares(11, {"token": 4, "public-key": 2}) == "token 36.4% · public-key 18.2%"
    assert form_shares(3, {"token": 0, "public-key": 0}) == "token 0.0% · public-key 0.0%"
    assert form_shares(0, {"token": 0, "public-key": 0}) == "—"  # no valid user: no share
