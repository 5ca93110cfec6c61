"""How the admin shows things: the order of platform kinds, dates, shares, the rotation
message, the per-day chart's geometry, and the correlated subqueries that put counts,
rotation dates and valid shares on list rows. These are pure wording, formatting and
query-shaping helpers shared by the model admins and the settings page (shares and
moments worded by ``trusted_identity.formatting``), kept apart so
that the pages read as what they show; they import nothing from the admin package and
decide nothing (the figures themselves come from ``services``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..formatting import moment, percent
from ..models import Platform, PlatformKind, PlatformSecret
from ..services import figures

KIND_ORDER = {kind: index for index, kind in enumerate(PlatformKind.values)}


# ------------------------------------------------------------ row annotations


def count_subquery(queryset: QuerySet, group: str) -> Coalesce:
    """A correlated COUNT subquery: no join, so no row multiplication between counts."""
    return Coalesce(
        Subquery(
            queryset.order_by().values(group).annotate(n=Count("pk")).values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


def current_secret_since(platform_ref: str = "pk") -> Subquery:
    return Subquery(
        PlatformSecret.objects.filter(platform=OuterRef(platform_ref))
        .current()
        .order_by("-created_at")
        .values("created_at")[:1]
    )


def previous_valid_until(now: datetime) -> Subquery:
    return Subquery(
        PlatformSecret.objects.filter(platform=OuterRef("pk"))
        .previous_in_grace(now)
        .order_by("-valid_until")
        .values("valid_until")[:1]
    )


# ------------------------------------------------------------------ wording


def short(value: datetime | None) -> str:
    """A moment as the whole console and the CLI say it: ``2026-11-26 14:05 UTC``."""
    return moment(value)


def rotation_message(platforms: list[Platform], grace: timedelta, on_page: bool = False) -> str:
    """What a rotation did; ``on_page``: said on the Trusted Identity page itself, whose
    Reveal button is beside the message, so it doesn't send the reader there."""
    names = ", ".join(str(p) for p in platforms)
    if grace.total_seconds() == 0:
        tail = _("No earlier secret verifies any more: only the new one does.")
    else:
        until = moment(timezone.now() + grace)
        tail = _("The previous secret still verifies until %(until)s.") % {"until": until}
    head = ngettext(
        "Rotated the secret of %(names)s.", "Rotated the secrets of %(names)s.", len(platforms)
    ) % {"names": names}
    if on_page:
        return f"{head} {tail}"
    return f"{head} {tail} " + _("Reveal the new secret on the space's Trusted Identity page.")


def revocation_message(platform: Platform, ended: int) -> str:
    return ngettext(
        "Ended the grace of %(count)d previous %(platform)s secret: only the current "
        "secret verifies now.",
        "Ended the grace of %(count)d previous %(platform)s secrets: only the current "
        "secret verifies now.",
        ended,
    ) % {"count": ended, "platform": platform.get_kind_display()}


# -------------------------------------------------------------------- chart


def chart(days: list[tuple[date, figures.Figures]]) -> dict[str, Any]:
    """Stacked bars (valid, not valid, visitor) for the per-day chart, as SVG geometry."""
    bar_width, pitch, height = 22, 34, 64
    top = max((f.identified + f.visitor for _day, f in days), default=0)
    bars = []
    for index, (day, f) in enumerate(days):
        x = 6 + index * pitch
        y = height
        segments = []
        for css, value in (
            ("ti-bar-valid", f.valid),
            ("ti-bar-bad", f.invalid + f.missing + f.rejected),
            ("ti-bar-visitor", f.visitor),
        ):
            if value and top:
                h = max(1.0, round(value / top * (height - 4), 1))
                y -= h
                segments.append({"css": css, "y": round(y, 1), "height": h})
        bars.append(
            {
                "day": day,
                "figures": f,
                "share": percent(f.valid_share),
                "bad": f.invalid + f.missing + f.rejected,
                "x": x,
                "label_x": x + bar_width / 2,
                "width": bar_width,
                "segments": segments,
            }
        )
    return {
        "bars": bars,
        "width": 6 + len(days) * pitch,
        "height": height,
        "label_y": height + 13,
        "total_height": height + 18,
        "empty": top == 0,
    }
