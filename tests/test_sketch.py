"""The distinct-user sketch (trusted_identity/sketch.py): exact while small, within the
issue's 2 % once large, and a union that never double counts."""

from __future__ import annotations

from hashlib import blake2b

import pytest

from trusted_identity.sketch import EXACT_LIMIT, REGISTERS, DistinctSketch, _register_of, user_hash

KEY = b"k" * 32


def sketch_of(users, key=KEY):
    sketch = DistinctSketch()
    sketch.add_hashes(user_hash(u, key) for u in users)
    return sketch


def test_one_key_hashes_an_id_alike_and_another_key_differently():
    assert user_hash("alice", KEY) == user_hash("alice", KEY)
    assert user_hash("alice", KEY) != user_hash("alice", b"another key")
    assert user_hash("alice", KEY) != user_hash("bob", KEY)


def unkeyed_hash(user_id):
    """The hash before issue 19 (BLAKE2b without a key): what an attacker could compute."""
    return int.from_bytes(blake2b(user_id.encode(), digest_size=8).digest(), "big")


def test_ids_chosen_offline_count_as_one_user_each_with_the_key():
    """The attack: of 2**18 candidate ids, keep for each register the one whose unkeyed
    hash ranks highest there (what a search offline does, on a small budget). Unkeyed,
    those 16,384 ids count as hundreds of thousands of users; keyed, as about 16,384."""
    best: dict[int, tuple[int, str]] = {}
    for n in range(1 << 18):
        user_id = f"crafted-{n}"
        index, rank = _register_of(unkeyed_hash(user_id))
        if rank > best.get(index, (0, ""))[0]:
            best[index] = (rank, user_id)
    crafted = [user_id for _, user_id in best.values()]
    assert len(crafted) == REGISTERS
    unkeyed = DistinctSketch()
    unkeyed.add_hashes(unkeyed_hash(u) for u in crafted)
    assert unkeyed.count() > 10 * len(crafted)  # the attack, without a key
    keyed = sketch_of(crafted).count()
    assert abs(keyed - len(crafted)) / len(crafted) < 0.02


def test_small_sets_are_exact_and_replays_count_once():
    sketch = sketch_of([f"user-{n % 100}" for n in range(5000)])
    assert sketch.is_exact and sketch.count() == 100


@pytest.mark.parametrize("n", [EXACT_LIMIT + 1, 20_000, 300_000])
def test_large_sets_are_estimated_within_two_percent(n):
    sketch = sketch_of(f"user-{i}" for i in range(n))
    assert not sketch.is_exact
    assert abs(sketch.count() - n) / n < 0.02


def test_union_of_overlapping_days_counts_each_user_once():
    monday = sketch_of(f"u{i}" for i in range(0, 60_000))
    tuesday = sketch_of(f"u{i}" for i in range(40_000, 100_000))
    small = sketch_of(f"u{i}" for i in range(99_990, 100_010))  # exact, overlapping
    monday.merge(tuesday)
    monday.merge(small)
    assert abs(monday.count() - 100_010) / 100_010 < 0.02
    # Order does not matter, nor merging twice.
    again = sketch_of(f"u{i}" for i in range(40_000, 100_000))
    again.merge(sketch_of(f"u{i}" for i in range(0, 60_000)))
    again.merge(small)
    again.merge(again)
    assert again.to_bytes() == monday.to_bytes()


def test_merging_an_exact_sketch_past_the_limit_switches_to_registers():
    a = sketch_of(f"a{i}" for i in range(EXACT_LIMIT))
    b = sketch_of(f"b{i}" for i in range(EXACT_LIMIT))
    a.merge(b)
    assert not a.is_exact
    assert abs(a.count() - 2 * EXACT_LIMIT) / (2 * EXACT_LIMIT) < 0.02


def test_merge_says_whether_the_stored_form_changed():
    """A flush writes a sketch back only when ``merge`` says it changed: it must say so
    exactly when the stored bytes differ, for each pair of forms."""
    cases = [
        (range(0, 10), range(5, 10)),  # exact into exact, nothing new
        (range(0, 10), range(5, 15)),  # exact into exact, new users
        (range(0, EXACT_LIMIT), range(EXACT_LIMIT, EXACT_LIMIT + 5)),  # turns dense
        (range(0, 5_000), range(0, 10)),  # exact into dense, registers already that high
        (range(0, 5_000), range(5_000, 5_200)),  # exact into dense, new users
        (range(0, 5_000), range(0, 4_000)),  # dense into dense, nothing higher
        (range(0, 5_000), range(3_000, 9_000)),  # dense into dense, higher registers
        (range(0, 10), range(0, 5_000)),  # dense into exact: dense now
    ]
    seen = set()
    for mine, theirs in cases:
        stored = sketch_of(f"u{i}" for i in mine)
        before = stored.to_bytes()
        changed = stored.merge(sketch_of(f"u{i}" for i in theirs))
        assert changed == (stored.to_bytes() != before), (mine, theirs)
        seen.add(changed)
    assert seen == {True, False}


@pytest.mark.parametrize("n", [0, 7, EXACT_LIMIT + 50])
def test_bytes_round_trip(n):
    sketch = sketch_of(f"u{i}" for i in range(n))
    again = DistinctSketch.from_bytes(sketch.to_bytes())
    assert again.count() == sketch.count() and again.is_exact == sketch.is_exact


@pytest.mark.parametrize(
    "data", [b"X", b"E123", b"D" + b"not zlib", b"D" + __import__("zlib").compress(b"short")]
)
def test_damaged_bytes_are_a_value_error(data):
    with pytest.raises(ValueError):
        DistinctSketch.from_bytes(data)


def test_storage_is_bounded_whatever_the_number_of_users():
    big = sketch_of(f"u{i}" for i in range(200_000))
    assert len(big.to_bytes()) < 16 * 1024 + 64


def test_the_stored_exact_form_is_sorted_big_endian_hashes():
    """Rows written by any version are read by the next: the exact form is ``E`` then
    each hash as 8 big-endian bytes, in ascending order."""
    sketch = DistinctSketch()
    sketch.add_hashes([2**64 - 1, 1, 0x0102030405060708])
    stored = b"E" + bytes(7) + b"\x01" + bytes(range(1, 9)) + b"\xff" * 8
    assert sketch.to_bytes() == stored
    assert DistinctSketch.from_bytes(stored).to_bytes() == stored
    assert DistinctSketch.from_bytes(b"E").count() == 0
    assert DistinctSketch().to_bytes() == b"E"
