"""Regenerate the README's screenshots of the admin settings page: ``make screenshots``.

Builds a throw-away SQLite database with a demo space (web, iOS and Android, a
week of realistic session-start figures, web enforced, iOS rotated two hours ago
with a 24-hour grace, Android moving to public keys: two keys, both the secret and
public keys verifying, a share of its users signing with a public key for two days),
serves the example project on a local port, logs in through /admin/login/ in Debian's
Chromium (driven by Playwright; no browser download, no network) and saves the space's
Trusted Identity page, full length, in the light and the dark theme, on a desktop
(1,280 px wide) and a phone (390 px):

    docs/screenshots/settings-light.png        docs/screenshots/settings-dark.png
    docs/screenshots/settings-390-light.png    docs/screenshots/settings-390-dark.png

No secret is revealed on them. Figures are drawn from a seeded generator, so
only the dates (and the demo keys' fingerprints) change from one run to the next.
"""

from __future__ import annotations

import math
import os
import random
import secrets
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("TRUSTED_IDENTITY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--font-render-hinting=none",
]
USERNAME, PASSWORD = "dana", secrets.token_urlsafe(16)
#: The widths shot: a desktop (the README's picture) and a phone; the file's suffix.
VIEWPORTS = {"": {"width": 1280, "height": 900}, "-390": {"width": 390, "height": 844}}

#: Hourly session starts per platform: (identified starts at the daily peak, visitors
#: at the peak, valid share on the first and on the last day, share of the non-valid
#: starts that are "missing" rather than "invalid").
TRAFFIC = {
    "web": (420, 260, 0.998, 0.999, 0.2),
    "ios": (310, 90, 0.991, 0.997, 0.6),
    "android": (260, 70, 0.55, 0.86, 0.9),
}
#: App versions: (version, part of the valid starts, part of the failing ones). The
#: newest sign, the oldest predate signing.
VERSIONS = {
    "web": [("web-2025.11", 0.93, 0.1), ("web-2025.10", 0.07, 0.4), (None, 0.0, 0.5)],
    "ios": [
        ("3.2.1", 0.71, 0.02),
        ("3.2.0", 0.27, 0.08),
        ("3.1.4", 0.002, 0.55),
        ("3.0.9", 0.0, 0.35),
    ],
    "android": [
        ("3.2.1", 0.58, 0.01),
        ("3.2.0", 0.41, 0.03),
        ("3.1.4", 0.01, 0.46),
        ("3.1.2", 0.0, 0.31),
        ("2.9.0", 0.0, 0.12),
        (None, 0.0, 0.07),
    ],
}
#: Why the invalid starts were invalid: (reason, part).
REASONS = {
    "web": [("no_match", 0.7), ("malformed", 0.3)],
    "ios": [("expired_secret", 0.55), ("no_match", 0.45)],
    "android": [("other_platform", 0.62), ("no_match", 0.28), ("malformed", 0.1)],
}
#: Identified starts per distinct user and day (people open the app a few times a day).
STARTS_PER_USER = 2.6
#: Android's signers moved to public keys this long ago, for this share of its users.
PUBLIC_KEYS_FOR = timedelta(days=2)
PUBLIC_KEY_SHARE = 0.3


def configure(workdir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from trusted_identity.crypto import generate_key

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_READ_DOT_ENV": "0",  # a developer's .env must not leak into the docs
            "DEBUG": "1",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": f"sqlite:///{workdir / 'screenshots.sqlite3'}",
            "CACHE_URL": "locmemcache://screenshots",
            "TRUSTED_IDENTITY_ENCRYPTION_KEYS": generate_key(),
            "TRUSTED_IDENTITY_RATE_LIMIT": "off",
            "TIME_ZONE": "UTC",
            "LOG_LEVEL": "WARNING",
            # Playwright's sync API runs an event loop in this thread; Django's
            # documented switch lets this single-purpose script still use the ORM.
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def demo_data():
    """The demo space, its owner, and the figures of the last 7 days: outcomes, distinct
    users, app versions, reasons, secret use and failures. Returns the space."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from trusted_identity import outcomes
    from trusted_identity.models import Platform, PlatformSecret, Role
    from trusted_identity.services import (
        access,
        counting,
        enforcement,
        memberships,
        platform_secrets,
        spaces,
    )

    user = get_user_model().objects.create_user(
        USERNAME, "dana@example.com", PASSWORD, is_staff=True, first_name="Dana"
    )
    cli = access.get_cli_actor()
    space = spaces.create_space("acme", "Acme Mobile", cli)
    memberships.grant(space, USERNAME, Role.OWNER, cli)
    actor = access.Actor.admin(user)
    platforms = {kind: spaces.add_platform(space, kind, actor) for kind in TRAFFIC}

    now = timezone.now()
    rng = random.Random(20240611)  # noqa: S311 - figures for a picture, not a secret
    hours = 7 * 24
    for kind, (identified_peak, visitor_peak, first, last, missing_part) in TRAFFIC.items():
        platform = platforms[kind]
        tally = Tally(platform.pk, now - PUBLIC_KEYS_FOR if kind == "android" else None)
        for back in range(hours, 0, -1):
            at = now - timedelta(hours=back)
            # A day curve: quiet at night (UTC 03:00), busiest in the evening.
            load = 0.25 + 0.75 * (0.5 - 0.5 * math.cos((at.hour - 3) / 24 * 2 * math.pi))
            identified = round(identified_peak * load * rng.uniform(0.85, 1.15))
            visitors = round(visitor_peak * load * rng.uniform(0.8, 1.2))
            share = first + (last - first) * (1 - back / hours)
            valid = round(identified * min(1.0, rng.gauss(share, 0.004)))
            bad = identified - valid
            missing = round(bad * missing_part)
            invalid = bad - missing
            if kind == "web" and back < 3 * 24:  # enforced for 3 days: refused, not counted bad
                counts = {"valid": valid, "rejected": bad, "visitor": visitors}
            else:
                counts = {"valid": valid, "invalid": invalid, "missing": missing}
                counts["visitor"] = visitors
            for outcome, count in counts.items():
                if count > 0:
                    outcomes.count(platform.pk, counting.hour_start(at), outcome, count)
            tally.hour(at, counts, invalid if "invalid" in counts else bad, kind, rng)
        tally.save(rng)
    outcomes.flush()

    # Web: enforced three days ago (the figures were ready); secrets made weeks ago.
    enforcement.set_enforcement(platforms["web"], True, actor)
    Platform.objects.filter(pk=platforms["web"].pk).update(
        enforcement_changed_at=now - timedelta(days=3, hours=2)
    )
    LogEntry.objects.filter(change_message__startswith="Turned enforcement on").update(
        action_time=now - timedelta(days=3, hours=2)
    )
    for kind, age in (("web", timedelta(days=41)), ("android", timedelta(days=63))):
        PlatformSecret.objects.filter(platform=platforms[kind]).update(created_at=now - age)
    # iOS: rotated two hours ago with a 24-hour grace; the previous secret still verifies
    # the starts of clients that have not updated yet.
    PlatformSecret.objects.filter(platform=platforms["ios"]).update(
        created_at=now - timedelta(days=88)
    )
    platform_secrets.rotate_secret(platforms["ios"], actor, timedelta(hours=24))
    rotated = now - timedelta(hours=2)
    rows = PlatformSecret.objects.filter(platform=platforms["ios"])
    rows.filter(retired_at__isnull=True).update(created_at=rotated)
    rows.filter(retired_at__isnull=False).update(
        retired_at=rotated, valid_until=rotated + timedelta(hours=24)
    )
    previous = rows.filter(retired_at__isnull=False).get()
    current = rows.filter(retired_at__isnull=True).get()
    secret_use(platforms["ios"], previous, now, 2, 310, rng)
    secret_use(platforms["ios"], current, now, 2, 120, rng)
    for kind in ("web", "android"):
        secret_use(
            platforms[kind], PlatformSecret.objects.get(platform=platforms[kind]), now, 24, 300, rng
        )
    moving_to_public_keys(platforms["android"], actor, now, rng)
    return space


def moving_to_public_keys(platform, actor, now, rng) -> None:
    """Android: its new signers' ES256 key in use for two days, an older RSA key unused
    and expiring, both the secret and public keys verifying."""
    from trusted_identity.models import DetailCount, PolicyChange, PublicKey
    from trusted_identity.publickeys import generate_key_pair
    from trusted_identity.services import key_sources, public_keys

    for kid, alg, added, expires in (
        ("android-signer-2026", "ES256", PUBLIC_KEYS_FOR + timedelta(hours=3), None),
        ("legacy-rsa", "RS256", timedelta(days=30), timedelta(days=20)),
    ):
        _private, public = generate_key_pair(alg)  # the private half is dropped at once
        row = public_keys.add_public_key(
            platform, public, actor, kid=kid, expires_at=None if expires is None else now + expires
        )
        PublicKey.objects.filter(pk=row.pk).update(added_at=now - added)
        if kid == "legacy-rsa":
            continue
        for back in range(24, 0, -1):
            hour = (now - timedelta(hours=back)).replace(minute=0, second=0, microsecond=0)
            DetailCount.objects.update_or_create(
                platform_id=platform.pk,
                hour=hour,
                dimension="key",
                value=str(row.pk),
                outcome="valid",
                defaults={"count": round(80 * rng.uniform(0.7, 1.3))},
            )
        PublicKey.objects.filter(pk=row.pk).update(
            last_verified_at=now - timedelta(minutes=rng.randrange(1, 9))
        )
    key_sources.set_key_source(platform, "both", actor)
    PolicyChange.objects.filter(platform=platform, setting="key_source").update(
        at=now - PUBLIC_KEYS_FOR - timedelta(hours=1)
    )


class Tally:
    """The detail counts of one platform as session start would have written them."""

    def __init__(self, platform_id: int, public_keys_since=None) -> None:
        self.platform_id = platform_id
        self.public_keys_from = public_keys_since  # when signers moved to public keys
        self.versions: dict = {}  # (day, version, outcome) -> n
        self.reasons: dict = {}  # (hour, reason, outcome) -> n
        self.users: dict = {}  # (day, kind) -> distinct users
        self.failures: list = []
        self.forms: dict = {}  # (hour, form, outcome) -> n

    def public_key_since(self, at) -> bool:
        return self.public_keys_from is not None and at >= self.public_keys_from

    def hour(self, at, counts: dict, invalid: int, kind: str, rng) -> None:
        from trusted_identity.services.counting import rejected_kind

        day = at.date()
        hour = at.replace(minute=0, second=0, microsecond=0)
        for outcome, count in counts.items():
            part = 1 if outcome == "valid" else 2
            for version, *parts in VERSIONS[kind]:
                share = 1 / len(VERSIONS[kind]) if outcome == "visitor" else parts[part - 1]
                n = round(count * share)
                if n:
                    key = (day, version or "none", outcome)
                    self.versions[key] = self.versions.get(key, 0) + n
            if outcome != "visitor":
                self.users[(day, "identified")] = self.users.get((day, "identified"), 0) + count
                # As counting does: valid users, users with a failing start, the users
                # rejected in each hour (the "now" of an enforced platform).
                kinds = ["valid"] if outcome == "valid" else ["failing"]
                if outcome == "rejected":
                    kinds.append(rejected_kind(hour.hour))
                for kind_of_users in kinds if count else ():
                    key = (day, kind_of_users)
                    self.users[key] = self.users.get(key, 0) + count
            if outcome == "valid":  # every valid start had its form counted
                signed = round(count * PUBLIC_KEY_SHARE) if self.public_key_since(at) else 0
                for form, n in (("plain", count - signed), ("public-key", signed)):
                    key = (hour, form, "valid")
                    self.forms[key] = self.forms.get(key, 0) + n
                if signed:  # their users, among the valid ones (DistinctUsers form:<form>)
                    key = (day, "form:public-key")
                    self.users[key] = self.users.get(key, 0) + signed
        reason_outcome = "rejected" if "rejected" in counts else "invalid"
        for reason, share in REASONS[kind]:
            n = round(invalid * share)
            if n:
                self.reasons[(hour, reason, reason_outcome)] = n
        if invalid and rng.random() < 0.5:
            reason = rng.choices([r for r, _s in REASONS[kind]], [s for _r, s in REASONS[kind]])[0]
            old = [v for v, _valid, failing in VERSIONS[kind] if failing > 0.2]
            version = rng.choice(old)
            self.failures.append(
                (
                    at.replace(minute=rng.randrange(60), second=rng.randrange(60)),
                    reason_outcome,
                    reason,
                    version,
                )
            )
        missing = counts.get("missing", 0)
        if missing:  # a missing signature is a reason like the others
            self.reasons[(hour, "missing", "missing")] = missing
        if missing and rng.random() < 0.3:
            old = [v for v, _valid, failing in VERSIONS[kind] if failing > 0.2]
            self.failures.append(
                (
                    at.replace(minute=rng.randrange(60), second=rng.randrange(60)),
                    "missing",
                    "missing",
                    rng.choice(old),
                )
            )

    def save(self, rng) -> None:
        from trusted_identity.countwrites import merge_distinct
        from trusted_identity.models import DailyDetailCount, FailureRecord
        from trusted_identity.services.counting import user_hasher

        DailyDetailCount.objects.bulk_create(
            DailyDetailCount(
                platform_id=self.platform_id,
                day=day,
                dimension="app_version",
                value=version,
                outcome=outcome,
                count=n,
            )
            for (day, version, outcome), n in self.versions.items()
        )
        write_details(
            [
                (hour, self.platform_id, "reason", reason, outcome, n)
                for (hour, reason, outcome), n in self.reasons.items()
            ]
            + [
                (hour, self.platform_id, "form", form, outcome, n)
                for (hour, form, outcome), n in self.forms.items()
            ]
        )
        hasher = user_hasher()  # keyed with the installation's distinct-user key
        for (day, kind), starts in self.users.items():
            people = max(1, round(starts / STARTS_PER_USER))
            # The same people come back each day: user ids from one pool, the valid ones
            # among the identified.
            ids = {f"user-{n}" for n in range(people)}
            if kind.startswith("rejected:"):  # each hour's rejected users, not the same few
                ids = {f"user-{int(kind[-2:]) * 97 + n}" for n in range(people)}
            merge_distinct(self.platform_id, day, kind, {hasher(i) for i in ids})
        FailureRecord.objects.bulk_create(
            FailureRecord(
                platform_id=self.platform_id,
                at=at,
                outcome=outcome,
                reason=reason,
                user_id=str(rng.randrange(10_000, 99_999)),
                app_version=version or "none",
                sdk_version=sdk_of(version, rng),
            )
            for at, outcome, reason, version in self.failures[-60:]
        )


def write_details(rows: list[tuple]) -> None:
    """Hourly detail counts ``(hour, platform_id, dimension, value, outcome, n)`` written
    as a flush writes them (``countwrites.write_counts``: the hourly rows and their day
    totals, in one transaction)."""
    from trusted_identity.countwrites import CountBatch, write_counts

    batch = CountBatch()
    for hour, platform_id, dimension, value, outcome, n in rows:
        batch.details.details[platform_id, hour, dimension, value, outcome] += n
    write_counts(batch)


def sdk_of(version: str | None, rng) -> str:
    if version is None:
        return "none"
    family = "web" if version.startswith("web") else "mobile"
    return f"{family}/1.{rng.randrange(2, 5)}.0"


def secret_use(platform, secret, now, hours: int, per_hour: int, rng) -> None:
    """Valid starts a secret verified, hour by hour, as session start counts them."""
    from trusted_identity.models import PlatformSecret

    rows = []
    for back in range(hours, 0, -1):
        hour = (now - timedelta(hours=back)).replace(minute=0, second=0, microsecond=0)
        n = round(per_hour * rng.uniform(0.7, 1.3))
        rows.append((hour, platform.pk, "secret", str(secret.pk), "valid", n))
    write_details(rows)
    PlatformSecret.objects.filter(pk=secret.pk).update(
        last_verified_at=now - timedelta(minutes=rng.randrange(1, 9))
    )


def serve():
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    server = LiveServerThread("localhost", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    return server, f"http://localhost:{server.port}"


#: The deepest elements whose right edge passes the viewport's (sideways scrolling).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > width + 1 && e.children.length === 0)
    .slice(0, 8)
    .map((e) => [e.closest("table, section, div")?.className, e.tagName, e.className,
                 e.textContent.trim().slice(0, 30), Math.round(e.getBoundingClientRect().right)]
      .join(" "));
}"""


def shoot(base_url: str, space) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        sys.exit(f"No Chromium at {CHROMIUM}: apt-get install chromium (no browser download)")
    OUT.mkdir(parents=True, exist_ok=True)
    settings_path = f"/admin/trusted_identity/space/{space.pk}/trusted-identity/"
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        session = None
        shots = [(width, scheme) for width in VIEWPORTS for scheme in ("light", "dark")]
        for width, scheme in shots:
            phone = width == "-390"
            context = browser.new_context(
                base_url=base_url,
                viewport=VIEWPORTS[width],
                color_scheme=scheme,
                device_scale_factor=1,
                is_mobile=phone,
                has_touch=phone,
                storage_state=session,
            )
            context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
            page = context.new_page()
            if session is None:
                page.goto("/admin/login/?next=/admin/")
                page.fill("#id_username", USERNAME)
                page.fill("#id_password", PASSWORD)
                page.click("input[type=submit]")
                page.wait_for_url("**/admin/")
                session = context.storage_state()
            page.goto(settings_path)
            page.wait_for_load_state("networkidle")
            if page.locator(".ti-secret.ti-revealed").count():  # pragma: no cover
                sys.exit("a secret is revealed on the page: not saving a screenshot of it")
            if phone:
                overflow = page.evaluate(OVERFLOWING)
                if overflow:
                    print(f"wider than the phone's screen ({scheme}): {overflow}", file=sys.stderr)
            path = OUT / f"settings{width}-{scheme}.png"
            page.screenshot(path=str(path), full_page=True, animations="disabled")
            saved.append(path)
            context.close()
        browser.close()
    return saved


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ti-screenshots-") as workdir:
        configure(Path(workdir))
        space = demo_data()
        server, base_url = serve()
        try:
            saved = shoot(base_url, space)
        finally:
            server.terminate()
    for path in saved:
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
