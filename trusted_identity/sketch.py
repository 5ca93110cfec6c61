"""Distinct counting of user ids: exact while small, a HyperLogLog sketch once large.

Readiness counts distinct users, not starts (replaying one valid pair must not make a
platform look ready), across every app server and at millions of users a day, without
a row per user. A :class:`DistinctSketch` is the union-friendly summary that makes this
possible:

- Up to ``EXACT_LIMIT`` distinct users it keeps their 64-bit hashes: the count is exact
  (short of a 64-bit hash collision), which is what the readiness minimum (100 users by
  default) is judged by.
- Beyond that it is a HyperLogLog of ``2**PRECISION`` one-byte registers (16,384 at
  precision 14): a standard error of 1.04 / sqrt(16,384) = 0.81 %, so 95 % of estimates
  lie within 1.6 % (the issue's bound is 2 %), in 16 KiB (a few KiB compressed) whatever
  the number of users.

Sketches merge by union (register-wise maximum), so per-process sketches, per-day rows
and a window of days add up without double counting, in any order, any number of
times. Plain Python, no Django: the storage lives in ``models.DistinctSketch``.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable
from hashlib import blake2b

PRECISION = 14
REGISTERS = 1 << PRECISION
#: Distinct hashes kept exactly before switching to registers (as large as the registers).
EXACT_LIMIT = REGISTERS // 8

_EXACT = b"E"
_DENSE = b"D"
_VALUE_BITS = 64 - PRECISION
_VALUE_MASK = (1 << _VALUE_BITS) - 1
# Byte-lane masks for the branch-free register-wise maximum of two register arrays
# held as one big integer each (every register is below 128).
_HIGH = int.from_bytes(b"\x80" * REGISTERS, "big")
_LOW7 = int.from_bytes(b"\x7f" * REGISTERS, "big")
_ALPHA = 0.7213 / (1 + 1.079 / REGISTERS)


#: The length of the installation's hashing key (``models.SketchKey``); BLAKE2b takes up to 64.
KEY_BYTES = 32


class UserHasher:
    """User ids to the 64-bit hash they are counted by: BLAKE2b keyed with the
    installation's key.

    Keyed, so that nobody without the key can choose ids offline whose hashes fill the
    registers with high ranks (16,384 crafted ids counted as millions of users
    unkeyed): a chosen id lands like a random one, one user at most. The key's block is
    compressed once, here; each hash copies that state, so it costs about what an
    unkeyed one does (docs/performance.md). The key is never shown, not even by repr.
    """

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        self._keyed = blake2b(digest_size=8, key=key)

    def __call__(self, user_id: str) -> int:
        hashed = self._keyed.copy()
        hashed.update(user_id.encode("utf-8"))
        return int.from_bytes(hashed.digest(), "big")

    def __repr__(self) -> str:
        return "<UserHasher>"


def user_hash(user_id: str, key: bytes) -> int:
    """The hash ``UserHasher(key)`` gives ``user_id`` (one-off uses and tests)."""
    return UserHasher(key)(user_id)


def _register_of(hashed: int) -> tuple[int, int]:
    """(register index, rank): the first PRECISION bits pick the register, the rank is
    the position of the first set bit in the rest (1 + its leading zeros)."""
    value = hashed & _VALUE_MASK
    return hashed >> _VALUE_BITS, _VALUE_BITS - value.bit_length() + 1


class DistinctSketch:
    """A set of user hashes, exact while small, a HyperLogLog beyond ``EXACT_LIMIT``."""

    __slots__ = ("_exact", "_registers")

    def __init__(self) -> None:
        self._exact: set[int] | None = set()
        self._registers: bytearray | None = None

    @property
    def is_exact(self) -> bool:
        return self._exact is not None

    def add_hashes(self, hashes: Iterable[int]) -> None:
        if self._exact is not None:
            self._exact.update(hashes)
            if len(self._exact) > EXACT_LIMIT:
                self._to_registers()
            return
        registers = self._registers
        assert registers is not None
        for hashed in hashes:
            index, rank = _register_of(hashed)
            if registers[index] < rank:
                registers[index] = rank

    def add(self, user_id: str, key: bytes) -> None:
        self.add_hashes((user_hash(user_id, key),))

    def _to_registers(self) -> None:
        exact, self._exact = self._exact or set(), None
        self._registers = bytearray(REGISTERS)
        self.add_hashes(exact)

    def merge(self, other: DistinctSketch) -> bool:
        """Union with ``other`` (which is left as it was); whether this sketch changed.

        A flush writes a stored sketch back only when it did, and learns it here rather
        than by serialising the sketch before and after (compressing 16 KiB of
        registers costs about a millisecond)."""
        if other._exact is not None:
            if self._exact is not None:
                size = len(self._exact)
                self.add_hashes(other._exact)
                return self._exact is None or len(self._exact) != size  # grew, or turned dense
            before = bytes(self._registers or b"")
            self.add_hashes(other._exact)
            return self._registers != before
        changed = self._exact is not None  # turning dense changes it, whatever it held
        if changed:
            self._to_registers()
        mine = int.from_bytes(self._registers or b"", "big")
        theirs = int.from_bytes(other._registers or b"", "big")
        # Per byte lane: (mine | 0x80) - theirs keeps the lane's high bit iff mine >= theirs.
        keep_mine = (((mine | _HIGH) - theirs) & _HIGH) >> 7
        keep_mine *= 0xFF
        merged = (mine & keep_mine) | (theirs & (~keep_mine & (_HIGH | _LOW7)))
        self._registers = bytearray(merged.to_bytes(REGISTERS, "big"))
        return changed or merged != mine

    def count(self) -> int:
        """The number of distinct users: exact while exact, else the HyperLogLog estimate
        (with linear counting while many registers are still empty)."""
        if self._exact is not None:
            return len(self._exact)
        registers = bytes(self._registers or b"")
        zeros = registers.count(0)
        harmonic = sum(registers.count(rank) * 2.0**-rank for rank in range(_VALUE_BITS + 2))
        estimate = _ALPHA * REGISTERS * REGISTERS / harmonic
        if estimate <= 2.5 * REGISTERS and zeros:
            estimate = REGISTERS * math.log(REGISTERS / zeros)
        return round(estimate)

    def to_bytes(self) -> bytes:
        """A compact form for the database: sorted hashes, or compressed registers."""
        if self._exact is not None:  # one pack of them all: a flush writes it twice
            exact = sorted(self._exact)
            return _EXACT + struct.pack(f">{len(exact)}Q", *exact)
        return _DENSE + zlib.compress(bytes(self._registers or b""), 6)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview | None) -> DistinctSketch:
        """The sketch ``to_bytes`` wrote; empty for None or b"". A damaged value is a
        ValueError (the caller logs it and starts afresh rather than failing a flush)."""
        sketch = cls()
        data = bytes(data or b"")
        if not data:
            return sketch
        kind, body = data[:1], data[1:]
        if kind == _EXACT and len(body) % 8 == 0:
            sketch.add_hashes(struct.unpack(f">{len(body) // 8}Q", body))
            return sketch
        if kind == _DENSE:
            try:
                registers = zlib.decompress(body)
            except zlib.error as exc:
                raise ValueError("damaged distinct sketch") from exc
            if len(registers) == REGISTERS:
                sketch._exact, sketch._registers = None, bytearray(registers)
                return sketch
        raise ValueError("damaged distinct sketch")

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        form = "exact" if self.is_exact else "estimated"
        return f"<DistinctSketch {self.count()} ({form})>"
