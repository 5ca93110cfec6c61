"""``make bench``'s ``hold`` section: whether ``make serve``'s server holds its throughput,
round after round, keep-alive connections then connections that reconnect."""

from __future__ import annotations

import os
from collections.abc import Callable

from bench.balance import MAX_WORKER_SHARE
from bench.serving import MAKE_SERVE, SERVERS, _free_port, measure, start, stop


def hold(
    env: dict[str, str],
    api_key: str,
    secret: str,
    body: str,
    *,
    server: str = MAKE_SERVE,
    keepalive_rounds: int = 10,
    reconnect_rounds: int = 5,
    seconds: int = 5,
    connections: int = 16,
    reconnect_every: int = 100,
) -> dict:
    """The steadiness check: consecutive rounds on the site, keep-alive then reconnecting."""
    target = start(SERVERS[server], "site", _free_port(set()), env, secret)
    try:
        measure(target, api_key, body, 2, connections)  # warm
        keep = [
            with_host_steal(measure, target, api_key, body, seconds, connections)
            for _ in range(keepalive_rounds)
        ]
        again = [
            with_host_steal(measure, target, api_key, body, seconds, connections, reconnect_every)
            for _ in range(reconnect_rounds)
        ]
    finally:
        stop(target)

    def verdict(runs: list[dict]) -> dict:
        rps = [round(r["rps"]) for r in runs]
        shares = [r["busiest_worker_share"] for r in runs]
        return {
            "rps": rps,
            "worst_to_best": round(min(rps) / max(rps), 3) if rps else None,
            "busiest_worker_share": shares,
            "max_share": max(shares, default=None),
            "non_2xx": sum(r["non_2xx"] for r in runs),
            **rounds_apart(runs, seconds),
        }

    return {
        "server": server,
        "seconds": seconds,
        "connections": connections,
        "keepalive": verdict(keep),
        f"reconnect_every_{reconnect_every}": verdict(again),
        "targets": {"worst_to_best": 0.85, "max_share": MAX_WORKER_SHARE},
    }


def machine_ticks() -> tuple[int, int] | None:
    """The whole machine's CPU ticks stolen by the hypervisor (a virtual machine's
    neighbours running on its cores) and in all, from ``/proc/stat``; None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is counted in user)
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


def with_host_steal(measure: Callable[..., dict], *args: object) -> dict:
    """``measure(*args)`` with ``host_steal``: the share of the machine's CPU time the
    hypervisor took from it during the round (None where unknown)."""
    before = machine_ticks()
    run = measure(*args)
    after = machine_ticks()
    share = None
    if before and after and after[1] > before[1]:
        share = round((after[0] - before[0]) / (after[1] - before[1]), 3)
    return run | {"host_steal": share}


def rounds_apart(runs: list[dict], seconds: int) -> dict:
    """What tells a slow round's cause, per round: the workers' CPU time over the round's
    length (``workers_busy``, in cores: a server that leaves a worker idle drops it) and
    their CPU time per request (``cpu_us_per_request``: a host that slows, a neighbour
    taking the core's caches, raises it for the same code). A round's requests/s is the
    first over the second, so the worst round set beside the best says which moved
    (``worst_round``); ``host_steal`` says how much of the machine the hypervisor took
    meanwhile (time no worker could run). Figures to read, not targets: the target is
    ``worst_to_best``."""
    clock = os.sysconf("SC_CLK_TCK")
    busy = [round(sum(r["worker_ticks"]) / clock / seconds, 3) for r in runs]
    cost = [r["cpu_us_per_request"] for r in runs]
    apart: dict = {
        "workers_busy": busy,
        "cpu_us_per_request": cost,
        "host_steal": [r.get("host_steal") for r in runs],
    }
    if runs:
        rps = [r["rps"] for r in runs]
        worst, best = rps.index(min(rps)), rps.index(max(rps))
        apart["worst_round"] = {
            "round": worst + 1,
            "best_round": best + 1,
            "workers_busy_over_best": round(busy[worst] / busy[best], 3) if busy[best] else None,
            "cpu_per_request_over_best": round(cost[worst] / cost[best], 3) if cost[best] else None,
        }
    return apart
