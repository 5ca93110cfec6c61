"""The version slots of a day (Space-Saving): junk sent once each never pushes out a
version with more starts than the junk can raise every slot to, the day's counts add
up to its starts, and each kept value's error bound holds."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from trusted_identity.versionslots import OTHER, DaySlots

SLOTS = 50


def stream(real: dict[str, int], junk: int, seed: int = 7) -> list[str]:
    """The starts' values in a random order: each real version its starts, then
    ``junk`` values sent once each."""
    values = [value for value, n in real.items() for _ in range(n)]
    values += [f"junk-{n}" for n in range(junk)]
    random.Random(seed).shuffle(values)
    return values


def merged(values: list[str], per_batch: int) -> DaySlots:
    day = DaySlots()
    for start in range(0, len(values), per_batch):
        batch: dict[str, Counter[str]] = {}
        for value in values[start : start + per_batch]:
            batch.setdefault(value, Counter())["visitor"] += 1
        day.merge(batch, SLOTS)
    return day


def check_bounds(day: DaySlots, values: list[str]) -> None:
    truth = Counter(values)
    assert day.total() == len(values)  # the day's counts add up to its starts
    assert len(day.slots) <= SLOTS
    for value, slot in day.slots.items():
        assert slot.counted <= truth[value] <= slot.estimate  # the stated error
    counted = sum(slot.counted for slot in day.slots.values())
    assert sum(day.other.values()) == len(values) - counted


@pytest.mark.parametrize("per_batch", [10**9, 1, 7, 500])  # one flush, many flushes
def test_fifty_junk_values_never_displace_a_version_with_more_starts(per_batch):
    real = {"3.2.1": 2, "3.1.0": 3, "none": 5}
    values = stream(real, junk=50)
    day = merged(values, per_batch)
    assert set(real) <= set(day.slots)
    assert all(day.slots[v].counted == n for v, n in real.items() if day.slots[v].max_error == 0)
    check_bounds(day, values)


@pytest.mark.parametrize("per_batch", [10**9, 1, 50, 997])
def test_five_thousand_junk_values_never_displace_a_heavier_version(per_batch):
    """5,000 junk values raise every slot to about 5,000 / 50 = 100 starts at most: a
    version with more is kept (Space-Saving: more than the day's starts / slots)."""
    real = {"3.2.1": 150, "3.1.0": 120, "web/1.4.0": 300}
    values = stream(real, junk=5000)
    day = merged(values, per_batch)
    assert set(real) <= set(day.slots)
    check_bounds(day, values)


def test_a_light_version_displaced_by_a_flood_loses_no_start():
    """5,000 junk raise the slots to ~100 starts: a version of 2 goes, and its starts
    then count in ``other``, outcome by outcome, never lost."""
    day = DaySlots()
    day.merge({"3.2.1": Counter(valid=2)}, SLOTS)
    for n in range(5000):
        day.merge({f"junk-{n}": Counter(visitor=1)}, SLOTS)
    assert "3.2.1" not in day.slots
    assert day.other["valid"] == 2 and day.total() == 5002


def test_two_processes_batches_merged_keep_the_heavy_versions():
    """Two processes flush their own batches of the same day into the stored slots."""
    real = {"3.2.1": 200, "3.1.0": 150}
    first, second = stream(real, 2500, seed=1), stream(real, 2500, seed=2)
    second = [v.replace("junk-", "junk-b") for v in second]
    day = DaySlots()
    for a, b in zip(range(0, len(first), 300), range(0, len(second), 300), strict=True):
        for values in (first[a : a + 300], second[b : b + 300]):
            batch: dict[str, Counter[str]] = {}
            for value in values:
                batch.setdefault(value, Counter())["visitor"] += 1
            day.merge(batch, SLOTS)
    assert set(real) <= set(day.slots)
    check_bounds(day, first + second)


def test_displacing_a_version_costs_about_slots_times_its_starts():
    """What SECURITY.md states: a version with c starts goes only once every other slot
    holds more than c, about (slots - 1) x c junk starts."""
    day = DaySlots()
    day.merge({"3.2.1": Counter(valid=20)}, SLOTS)
    sent = 0
    while "3.2.1" in day.slots:
        day.merge({f"junk-{sent}": Counter(visitor=1)}, SLOTS)
        sent += 1
    assert sent >= (SLOTS - 1) * 20
    assert day.other["valid"] == 20  # its starts moved to other


def test_other_and_no_slots():
    day = DaySlots()
    day.merge({OTHER: Counter(valid=3), "1.0": Counter(valid=1)}, 0)
    assert day.slots == {} and day.other == Counter(valid=4)
