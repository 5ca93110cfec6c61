"""Whether ``make bench`` is steady: every ratio of several runs' results side by side.

``python -m bench.steadiness A.json B.json C.json`` reads ``make bench`` results files
(``bench/results.json`` of each run, copied aside; ``make bench-steadiness`` makes three
in a row) and prints, for every ratio the runs share, each run's value, their median and
the farthest run's distance from it. It exits 1 when a ratio strays more than
``--tolerance`` (10 % by default) from its median, 2 on a file it can't read.

A ratio is a figure the results name as one: a key holding ``ratio``, ``_vs_`` or
``worst_to_best`` (but hold's ``targets``, the thresholds it is judged by), as a number
or as the median of its rounds (``pk_verify``'s, with their spread), and each of the
serving section's ``ratios`` (their medians). The spreads beside them are each
run's own; this is the spread between runs. Each run's probes of the host
(``bench.hostspeed``) are printed above the ratios, not judged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import hostspeed

RATIO_MARKS = ("ratio", "_vs_", "worst_to_best")


def ratios(results: dict) -> dict[str, float]:
    """Every ratio of one run's results, by its dotted path."""
    found: dict[str, float] = {}

    def walk(node: dict, path: str) -> None:
        for key, value in node.items():
            name = f"{path}.{key}" if path else str(key)
            if str(key).endswith("_spread") or (key == "targets" and path == "hold"):
                continue  # the run's own spread of a ratio; hold's targets are thresholds
            ratio = any(mark in str(key) for mark in RATIO_MARKS)
            if (
                isinstance(value, dict)
                and (ratio or path.endswith("serving.ratios"))
                and isinstance(value.get("median"), int | float)
            ):  # a ratio given with its spread: its median
                found[name] = float(value["median"])
            elif isinstance(value, dict):
                walk(value, name)
            elif isinstance(value, int | float) and not isinstance(value, bool) and ratio:
                found[name] = float(value)

    walk(results, "")
    return found


@dataclass(frozen=True)
class Row:
    name: str
    values: tuple[float, ...]
    median: float
    deviation: float  # the farthest run from the median, as a share of it

    def within(self, tolerance: float) -> bool:
        return self.deviation <= tolerance


def compare(runs: list[dict[str, float]]) -> list[Row]:
    """A row per ratio every run has, in the first run's order."""
    rows = []
    for name in runs[0]:
        if not all(name in run for run in runs[1:]):
            continue
        values = tuple(run[name] for run in runs)
        median = statistics.median(values)
        if median == 0:
            deviation = 0.0 if all(v == 0 for v in values) else float("inf")
        else:
            deviation = max(abs(v - median) for v in values) / abs(median)
        rows.append(Row(name, values, median, deviation))
    return rows


def load(path: Path) -> dict:
    try:
        results = json.loads(path.read_text())
    except OSError as error:
        raise SystemExit(f"bench.steadiness: can't read {path}: {error.strerror}") from None
    except ValueError:
        raise SystemExit(f"bench.steadiness: {path} is not JSON") from None
    if not isinstance(results, dict):
        raise SystemExit(f"bench.steadiness: {path} holds no make bench results")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="make bench results files")
    parser.add_argument("--tolerance", type=float, default=0.10, help="default 0.10 (10%%)")
    args = parser.parse_args(argv)
    if len(args.results) < 2:
        parser.error("give two results files or more")
    try:
        loaded = [load(path) for path in args.results]
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    rows = compare([ratios(results) for results in loaded])
    if not rows:
        print("bench.steadiness: the files share no ratio", file=sys.stderr)
        return 2
    dates = " | ".join(str(results.get("date", "?")) for results in loaded)
    print(f"{len(loaded)} runs: {dates}")
    for number, results in enumerate(loaded, 1):  # how fast and how noisy the host was
        if isinstance(results.get("host"), dict):
            print(f"  run {number} host (a plain loop): {hostspeed.describe(results['host'])}")
    width = max(len(row.name) for row in rows)
    for row in rows:
        values = "  ".join(f"{value:8.3f}" for value in row.values)
        mark = "" if row.within(args.tolerance) else "  <- outside"
        spread = f"±{row.deviation:6.1%}"
        print(f"{row.name:<{width}}  {values}  median {row.median:8.3f}  {spread}{mark}")
    outside = [row for row in rows if not row.within(args.tolerance)]
    print(
        f"{len(rows) - len(outside)} of {len(rows)} ratios within ±{args.tolerance:.0%} "
        "of their median"
    )
    return 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
