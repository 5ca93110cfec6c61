"""The client versions kept per platform, UTC day and dimension: the heaviest, by starts.

A day keeps at most ``VERSIONS_PER_DAY`` values (slots) per platform and dimension
(``X-App-Version``, ``X-Sdk-Version``); every other start is counted as ``other``.
Which values hold the slots is decided by Space-Saving (Metwally, Agrawal and El
Abbadi, 2005), merged batch by batch: a value already kept adds its starts; a new one
takes a free slot, or, when every slot is taken, the slot of the value with the fewest
estimated starts, whose counted starts move to ``other``.

Each kept value holds its exact starts since it got its slot (by outcome) and
``max_error``: the estimate of the value it replaced (0 for a free slot). Its
estimate is their sum, as Space-Saving counts it, and:

- its true starts that day lie between its counted starts and the estimate: the
  starts it had before entering (counted in ``other``) were at most ``max_error``,
  the smallest estimate kept when it entered;
- a value whose true starts exceed the smallest estimate kept is never evicted, and
  the smallest estimate is at most (the day's starts) / slots: to push out a version
  with ``c`` starts, values it beats must first be raised past ``c`` in every other
  slot, about ``slots x c`` starts. Values sent once each never push out a version
  with more starts than that;
- the counts of the day (kept values and ``other``) add up to the day's starts,
  outcome by outcome: starts move to ``other``, never disappear.

Plain Python (no Django): ``countwrites`` reads the day's rows, merges here, and
writes back the difference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

#: What a version without a slot is counted as.
OTHER = "other"


@dataclass
class VersionSlot:
    """One kept value: its starts by outcome since it entered, and the bound on those
    it may have had before (counted in ``other``)."""

    counts: Counter[str] = field(default_factory=Counter)
    max_error: int = 0

    @property
    def counted(self) -> int:
        return sum(self.counts.values())

    @property
    def estimate(self) -> int:
        return self.counted + self.max_error


@dataclass
class DaySlots:
    """The versions of one platform, day and dimension: kept values and ``other``."""

    slots: dict[str, VersionSlot] = field(default_factory=dict)
    other: Counter[str] = field(default_factory=Counter)

    def total(self) -> int:
        return sum(s.counted for s in self.slots.values()) + sum(self.other.values())

    def merge(self, batch: Mapping[str, Mapping[str, int]], size: int) -> None:
        """Add a batch's starts ({value: {outcome: n}}) keeping at most ``size`` values.

        The batch's values are merged heaviest first, so that within one batch a value
        with many starts takes its slot before the ones sent once compete for the rest.
        """
        ordered = sorted(batch.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        for value, counts in ordered:
            kept = self.slots.get(value)
            if kept is not None:
                kept.counts.update(counts)
            elif value == OTHER or size <= 0:
                self.other.update(counts)
            elif len(self.slots) < size:
                self.slots[value] = VersionSlot(Counter(counts))
            else:
                evicted = self.slots.pop(self._lightest())
                self.other.update(evicted.counts)
                self.slots[value] = VersionSlot(Counter(counts), evicted.estimate)

    def _lightest(self) -> str:
        """The value to give up its slot: the smallest estimate; among equal ones, the
        one with the fewest counted starts (the most of it an error), then by name."""
        return min(
            self.slots,
            key=lambda value: (self.slots[value].estimate, self.slots[value].counted, value),
        )
