"""How fast the host runs plain Python at a moment: a loop of 200,000 additions timed
over and over for a few seconds.

A shared machine's neighbours move every figure of ``make bench``, served or in-process,
and a ratio's spread can't tell that from the code. ``make bench`` probes the host at the
start and at the end of a run: the loop's best time says how fast the host is, its
median over its best how noisy (1.0 is quiet; the quiet hosts this project was measured
on gave 1.03 to 1.10, the noisy ones 1.3 to 1.8). Not a ratio of the app's: the
steadiness check prints it beside the runs and does not judge it.
"""

from __future__ import annotations

import statistics
import time

LOOP = 200_000


def _loop() -> int:
    total = 0
    for number in range(LOOP):
        total += number
    return total


def probe(seconds: float = 3.0) -> dict:
    """The loop timed over and over for ``seconds``: its best and median (ms), the median
    over the best, and how many times it ran."""
    times = []
    end = time.perf_counter() + seconds
    while not times or time.perf_counter() < end:
        began = time.perf_counter()
        _loop()
        times.append(time.perf_counter() - began)
    best, median = min(times), statistics.median(times)
    return {
        "loop_best_ms": round(best * 1e3, 3),
        "loop_median_ms": round(median * 1e3, 3),
        "median_over_best": round(median / best, 3),
        "loops": len(times),
    }


def describe(host: dict) -> str:
    """One line: each probe of a run (``start``, ``end``) as best, median over best."""
    return ", ".join(
        f"{moment} {figures['loop_best_ms']:.2f} ms best, median {figures['median_over_best']:.2f}x"
        for moment, figures in host.items()
    )
