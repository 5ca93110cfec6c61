"""A site's own tests, as an adopter writes them, with the app's default settings.

Django ``TestCase`` classes and pytest-django tests that start sessions see exact
counts, and nothing is left for the next test (issue 10: buffered counts used to
survive a ``TestCase`` rollback; on PostgreSQL the next test's teardown then failed
with an IntegrityError). They also exercise ``trusted_identity.testing``.
"""

import pytest
from django.conf import settings
from django.test import TestCase, TransactionTestCase, override_settings

from tests.support import record_outcome
from trusted_identity import outcomes, runtime, testing
from trusted_identity.conf import app_settings
from trusted_identity.models import OutcomeCount, Platform
from trusted_identity.services import figures

#: The suite's settings without its COUNT_FLUSH_INTERVAL = 0: the app's default (0.5 s).
DEFAULT_COUNTING = {
    key: value for key, value in settings.TRUSTED_IDENTITY.items() if key != "COUNT_FLUSH_INTERVAL"
}
ZERO = {"valid": 0, "invalid": 0, "missing": 0, "visitor": 0, "rejected": 0}


@override_settings(TRUSTED_IDENTITY=DEFAULT_COUNTING)
class AdopterTestCase(TestCase):
    """Run in this order (unittest sorts by name): the second sees nothing of the first."""

    @classmethod
    def setUpTestData(cls):
        cls.platform = testing.create_platform("web", space="my-space", secret="s3cr3t")

    def setUp(self):
        self.assertEqual(app_settings.COUNT_FLUSH_INTERVAL, 0.5)
        self.assertEqual(runtime.current().counts.pending().counts, {})

    def test_1_counts_are_exact_at_once(self):
        self.assertEqual(testing.start_session(self.client, self.platform).status_code, 201)
        response = testing.start_session(self.client, self.platform, "42")
        self.assertEqual(response.status_code, 201)
        self.assertEqual(response.json()["signature"], "valid")
        self.assertEqual(
            testing.start_session(self.client, self.platform, "7", signed=None).json()["signature"],
            "missing",
        )
        # Straight from the table, no flush: nothing waits in memory.
        self.assertEqual(OutcomeCount.objects.filter(platform=self.platform).count(), 3)
        self.assertEqual(runtime.current().counts.pending().counts, {})
        self.assertEqual(
            testing.counts(self.platform), {**ZERO, "visitor": 1, "valid": 1, "missing": 1}
        )

    def test_2_nothing_leaks_from_the_previous_test(self):
        self.assertEqual(testing.counts(self.platform), ZERO)
        self.assertEqual(figures.readiness(self.platform).visitor, 0)
        self.assertFalse(OutcomeCount.objects.exists())

    def test_3_signatures_match_the_known_secret(self):
        self.assertEqual(testing.sign(self.platform, "42"), testing.sign("s3cr3t", "42"))
        response = testing.start_session(
            self.client, self.platform, "42", signed=testing.sign("s3cr3t", "42")
        )
        self.assertEqual(response.json()["trusted"], True)
        wrong = testing.start_session(self.client, self.platform, "42", signed="0" * 64)
        self.assertEqual(wrong.json()["signature"], "invalid")

    @testing.enforcement("my-space", "web")
    def test_4_enforcement_on_for_a_test(self):
        refused = testing.start_session(self.client, self.platform, "42", signed=None)
        self.assertEqual(refused.status_code, 403)
        self.assertEqual(refused.json()["error"]["code"], "signature_required")
        self.assertEqual(testing.start_session(self.client, self.platform, "42").status_code, 201)
        self.assertEqual(testing.counts(self.platform), {**ZERO, "rejected": 1, "valid": 1})

    def unsigned_start(self):
        return testing.start_session(self.client, self.platform, "1", signed=None).status_code

    def test_5_enforcement_on_for_a_block_then_off_again(self):
        self.assertEqual(self.unsigned_start(), 201)
        with testing.enforcement(self.platform) as platform:
            self.assertTrue(platform.enforced)
            self.assertTrue(self.platform.enforced)
            self.assertEqual(self.unsigned_start(), 403)
            with testing.enforcement(self.platform, on=False):
                self.assertEqual(self.unsigned_start(), 201)
            self.assertEqual(self.unsigned_start(), 403)
        self.assertFalse(Platform.objects.get(pk=self.platform.pk).enforced)
        self.assertEqual(self.unsigned_start(), 201)

    def test_6_enforcement_outlived_by_nothing(self):
        self.assertFalse(Platform.objects.get(pk=self.platform.pk).enforced)


@override_settings(TRUSTED_IDENTITY=DEFAULT_COUNTING)
@testing.enforcement("my-space", "ios")
class EnforcedClassTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.platform = testing.create_platform("ios", space="my-space", api_key="tik_known")

    def test_every_test_of_the_class_is_enforced(self):
        self.assertEqual(self.platform.api_key, "tik_known")
        response = testing.start_session(self.client, self.platform, "42", signed="f" * 64)
        self.assertEqual(response.json()["error"]["code"], "signature_invalid")
        self.assertEqual(testing.counts(self.platform)["rejected"], 1)


@testing.counts_at_once()
class LiveishTransactionTestCase(TransactionTestCase):
    """No transaction around the test: with COUNT_FLUSH_INTERVAL 0 (what the testing
    module tells adopters to set) counts are written at once, by the request."""

    def test_counts_are_exact_without_a_transaction(self):
        platform = testing.create_platform("android")
        self.assertEqual(testing.start_session(self.client, platform, "42").status_code, 201)
        self.assertEqual(OutcomeCount.objects.get(platform=platform).count, 1)
        self.assertEqual(runtime.current().counts.pending().counts, {})


@override_settings(TRUSTED_IDENTITY=DEFAULT_COUNTING)
class BufferedTransactionTestCase(TransactionTestCase):
    """With the default interval a request's counts wait for the thread: flush() is exact."""

    def test_flush_writes_the_counts(self):
        platform = testing.create_platform("android")
        self.assertEqual(testing.start_session(self.client, platform, "42").status_code, 201)
        testing.flush()
        self.assertEqual(OutcomeCount.objects.get(platform=platform).count, 1)


# ----------------------------------------------------------- pytest-django style


@pytest.fixture
def default_counting(settings):
    settings.TRUSTED_IDENTITY = DEFAULT_COUNTING
    assert app_settings.COUNT_FLUSH_INTERVAL == 0.5
    assert runtime.current().counts.pending().counts == {}


@pytest.fixture
def site_platform(db, default_counting):
    return testing.create_platform("web", space="site", secret="known")


def test_pytest_counts_are_exact(client, site_platform):
    assert testing.start_session(client, site_platform, "42").json()["signature"] == "valid"
    assert testing.start_session(client, site_platform).status_code == 201
    assert testing.counts(site_platform) == {**ZERO, "valid": 1, "visitor": 1}
    assert runtime.current().counts.pending().counts == {}


def test_pytest_nothing_leaks_from_the_previous_test(site_platform):
    assert not OutcomeCount.objects.exists()
    assert testing.counts(site_platform) == ZERO


@testing.enforcement("site", "web")
def test_pytest_enforcement_decorator_sees_fixtures(client, site_platform):
    assert testing.start_session(client, site_platform, "42", signed=None).status_code == 403


def test_pytest_enforcement_block(client, site_platform):
    with testing.enforcement(site_platform):
        assert testing.start_session(client, site_platform, "42", signed="x").status_code == 403
    assert testing.start_session(client, site_platform, "42", signed="x").status_code == 201
    assert testing.counts(site_platform) == {**ZERO, "rejected": 1, "invalid": 1}


def test_enforcement_needs_a_kind_with_a_slug(site_platform):
    with pytest.raises(TypeError, match="kind"), testing.enforcement("site"):
        pass


def test_sign_matches_the_node_vectors(node_vectors):
    for vector in node_vectors:
        assert testing.sign(vector["secret"], vector["userId"]) == vector["signed"]


def test_flush_counts_writes_what_a_serving_process_buffered(site_platform, monkeypatch):
    monkeypatch.setattr(outcomes, "in_transaction", lambda: False)
    monkeypatch.setattr(runtime.current().count_thread, "wake", lambda: None)  # by hand
    record_outcome(site_platform.pk, "valid", 2)
    assert sum(runtime.current().counts.pending().counts.values()) == 2
    assert testing.flush_counts() == 1
    assert runtime.current().counts.pending().counts == {}
    assert testing.counts(site_platform)["valid"] == 2
