"""How the benchmarks report a figure: the median of its runs with their spread."""

from __future__ import annotations

import statistics


def spread(values: list[float]) -> dict:
    """Median, min, max and the number of runs (``None`` figures when there was none)."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def median_run(runs: list[dict]) -> dict:
    """A target's rounds of load as one: the median of each figure, the non-2xx summed."""
    return {
        key: round(statistics.median(run[key] for run in runs), 3)
        for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
    } | {"non_2xx": sum(run["non_2xx"] for run in runs)}
