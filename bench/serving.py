"""Servers side by side (issue 22): which server serves session start best, measured.

Each candidate server serves two applications on ports of their own: the bare callable
of ``bench/bare.py`` (a session start's work, no Django: the limit) and the site
(``project.wsgi`` with the lean WSGI door, or ``project.asgi`` with the lean ASGI
door), whose session start is measured on the lean door and, at ``/bench/django/``,
through Django's own handler and middleware. The candidates:

- WSGI: gunicorn gthread as ``make serve SERVER=gunicorn`` runs it (``project/gunicorn.conf.py``);
  gunicorn tuned (``reuse_port``, a per-worker connection cap, more threads, the
  keep-alive cap at 100); Granian (``--interface wsgi``); uWSGI (HTTP/1.1 socket,
  threads).
- ASGI: uvicorn (uvloop, httptools); Granian (``--interface asgi``); Hypercorn (uvloop).

Every target (server x application) runs once per round, in a different order each
round (interleaved, so background load falls on all alike), under wrk with keep-alive
connections. Each worker's CPU time is read from ``/proc/<pid>/stat`` before and after
its run: a run in which one worker did more than ``MAX_WORKER_SHARE`` of the work is
not counted and is run again (at most ``RETRIES`` times; the refusals are reported).
Each figure is the median of the counted runs with its spread (min to max), and each
ratio (the site against the bare callable under the same server, and against the bare
callable under the fastest server) is the median of the per-round ratios with its
spread.

``hold()`` is the issue's steadiness check of one target: consecutive rounds with
keep-alive connections, then rounds whose connections reconnect every 100 requests;
worst round against best and the busiest worker's share in each.

``python -m bench.serving --quick`` runs a smoke round; ``make bench`` runs it in full
(section ``serving``). Honours ``BENCH_PORTS``, ``BENCH_DATABASE_URL`` and
``BENCH_CACHE_URL`` as ``bench/run.py`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.balance import MAX_WORKER_SHARE, RETRIES, balanced, busiest_share
from bench.figures import spread

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SESSIONS = "/trusted-identity/v1/sessions"


@dataclass(frozen=True)
class Server:
    name: str
    interface: str  # "wsgi" or "asgi"
    executable: str

    def command(self, app: str, port: int, workers: int, threads: int) -> list[str]:
        exe = str(BIN / self.executable)
        bind = ["--host", "127.0.0.1", "--port", str(port)]
        if self.name == "gunicorn":  # as make serve SERVER=gunicorn runs it
            return [exe, "-c", "project/gunicorn.conf.py", app]
        if self.name == "gunicorn-tuned":
            return [exe, "-c", "project/gunicorn.conf.py", "--reuse-port", app]
        if self.name.startswith("granian"):
            threads_flag = ["--blocking-threads", str(threads)] if self.interface == "wsgi" else []
            return [
                exe,
                "--interface",
                self.interface,
                *bind,
                "--workers",
                str(workers),
                *threads_flag,
                "--log-level",
                "warning",
                "--no-ws",
                app,
            ]
        if self.name == "uwsgi":
            module = app if ":" in app else f"{app}:application"
            return [
                exe,
                "--http11-socket",
                f"127.0.0.1:{port}",
                "--module",
                module,
                "--master",
                "--processes",
                str(workers),
                "--threads",
                str(threads),
                "--enable-threads",
                "--die-on-term",
                "--need-app",
                "--disable-logging",
            ]
        if self.name == "uvicorn":
            return [
                exe,
                app,
                *bind,
                "--workers",
                str(workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ]
        if self.name == "hypercorn":
            return [
                exe,
                "-w",
                str(workers),
                "-k",
                "uvloop",
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                app,
            ]
        raise ValueError(self.name)

    def env(self, port: int, workers: int, threads: int) -> dict[str, str]:
        env = {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
        if self.name == "gunicorn-tuned":
            env |= {
                "GUNICORN_THREADS": str(threads),
                # Each worker takes at most its share of the connections, so a burst of
                # reconnections can't pile on one; reconnect often to spread them again.
                "GUNICORN_WORKER_CONNECTIONS": str(max(threads, 10)),
                "GUNICORN_KEEPALIVE_REQUESTS": "100",
            }
        return env


#: The server ``make serve`` runs (the Makefile's ``SERVER``), which ``hold`` checks.
MAKE_SERVE = "granian-wsgi"

SERVERS = {
    s.name: s
    for s in (
        Server("gunicorn", "wsgi", "gunicorn"),
        Server("gunicorn-tuned", "wsgi", "gunicorn"),
        Server("granian-wsgi", "wsgi", "granian"),
        Server("uwsgi", "wsgi", "uwsgi"),
        Server("uvicorn", "asgi", "uvicorn"),
        Server("granian-asgi", "asgi", "granian"),
        Server("hypercorn", "asgi", "hypercorn"),
    )
}


def installed(name: str) -> bool:
    """Whether the server's executable is in this environment (the serve and dev extras)."""
    return (BIN / SERVERS[name].executable).exists()


APPS = {
    ("wsgi", "bare"): ("bench.bare:application", "/"),
    ("wsgi", "site"): ("project.wsgi:application", SESSIONS),
    ("asgi", "bare"): ("bench.bare:asgi_application", "/"),
    ("asgi", "site"): ("project.asgi:application", SESSIONS),
}
#: Session start through Django's own handler (the view behind every middleware), on
#: the bench URL the lean doors leave alone: the site's server process, another URL.
DJANGO_PATH = "/bench/django/v1/sessions"


@dataclass
class Running:
    """One server process serving one application."""

    server: Server
    app: str  # "bare" or "site"
    port: int
    process: subprocess.Popen
    url: str
    workers: int = 2  # worker processes the server was started with
    runs: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # rounds wrk could not run, and why

    @property
    def name(self) -> str:
        return f"{self.server.name}/{self.app}"


def _free_port(taken: set[int]) -> int:
    from bench.load import _free_port as free

    for _ in range(100):
        port = free()
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def start(
    server: Server,
    app: str,
    port: int,
    env: dict[str, str],
    secret: str,
    workers: int = 2,
    threads: int = 4,
) -> Running:
    """Start ``server`` with ``app`` on ``port``; returns once it answers."""
    target, path = APPS[server.interface, app]
    if server.name.startswith("gunicorn"):
        target = target.removesuffix(":application")
    # The server's messages to a file: an unread pipe fills and stalls the server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 (open as long as the server runs; stop closes it)
    process = subprocess.Popen(
        server.command(target, port, workers, threads),
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            **server.env(port, workers, threads),
            "BENCH_HANDWRITTEN_SECRET": secret,
        },
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    process.log = log
    url = f"http://127.0.0.1:{port}{path}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} {app} exited: {server_log(process)}")
        try:
            urllib.request.urlopen(url, data=b"{}", timeout=1)
            break
        except urllib.error.HTTPError:  # it answers (the bare callable: 400 to this body)
            break
        except OSError:
            time.sleep(0.2)
    else:
        stop(Running(server, app, port, process, url, workers))
        raise RuntimeError(f"{server.name} did not start with {app}")
    return Running(server, app, port, process, url, workers)


def server_log(process: subprocess.Popen, size: int = 2000) -> str:
    """The end of what a server started by ``start`` wrote to its stderr."""
    process.log.seek(0)
    return process.log.read().decode(errors="replace")[-size:]


def stop(running: Running) -> None:
    try:
        os.killpg(running.process.pid, signal.SIGTERM)
        running.process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(running.process.pid, signal.SIGKILL)
        running.process.wait(timeout=10)
    running.process.log.close()


def worker_ticks(running: Running) -> dict[int, int]:
    """CPU ticks (user + system, all threads) of each worker process; the master's own
    when the server runs in one process."""
    from bench.load import descendants, process_ticks

    return process_ticks(descendants(running.process.pid) or [running.process.pid])


def measure(
    running: Running,
    api_key: str,
    body: str,
    seconds: int,
    connections: int,
    reconnect_every: int = 0,
) -> dict:
    """One wrk run against ``running``, with each worker's share of the server's CPU."""
    from bench.load import _wrk

    before = worker_ticks(running)
    if reconnect_every:
        os.environ["BENCH_RECONNECT_EVERY"] = str(reconnect_every)
    try:
        result = _wrk(running.url, api_key, body, seconds, connections)
    finally:
        os.environ.pop("BENCH_RECONNECT_EVERY", None)
    after = worker_ticks(running)
    used = {pid: after[pid] - before.get(pid, 0) for pid in after}
    total = sum(used.values())
    clock = os.sysconf("SC_CLK_TCK")
    return result | {
        "workers": running.workers,
        "worker_ticks": sorted(used.values(), reverse=True),
        "busiest_worker_share": busiest_share(list(used.values())),
        "cpu_us_per_request": round(total / clock * 1e6 / max(1, result["requests"]), 1),
    }


def failed(target: Running, round_index: int, error: subprocess.CalledProcessError) -> None:
    """A round wrk could not run, kept with its reason (and the server's last words
    when it has exited) instead of ending the whole benchmark."""
    reason = (error.stderr or error.stdout or "").strip().splitlines()[-1:] or ["no output"]
    exited = target.process.poll()
    why = f"round {round_index}: wrk exited {error.returncode}: {reason[0]}"
    if exited is not None:
        why += f"; the server exited {exited}: {server_log(target.process, 600)!r}"
    target.failed.append(why)
    print(f"{target.name}: {why}", file=sys.stderr)


def compare(
    env: dict[str, str],
    api_key: str,
    secret: str,
    body: str,
    *,
    servers: list[str],
    rounds: int,
    seconds: int,
    connections: int,
    workers: int = 2,
    threads: int = 4,
    django: bool = True,
) -> dict:
    """Every server x application, interleaved rounds, balance checked, spreads reported."""
    taken: set[int] = set()
    running: list[Running] = []
    try:
        for name in servers:
            if not installed(name):
                print(f"{name}: not installed, skipped", file=sys.stderr)
                continue
            for app in ("bare", "site"):
                port = _free_port(taken)
                running.append(start(SERVERS[name], app, port, env, secret, workers, threads))
            if django:
                site = running[-1]
                url = f"http://127.0.0.1:{site.port}{DJANGO_PATH}"
                running.append(
                    Running(site.server, "django", site.port, site.process, url, site.workers)
                )
        for target in running:  # warm every worker's caches and connections
            measure(target, api_key, body, 1, connections)
        for round_index in range(rounds):
            shift = round_index % len(running)
            for target in running[shift:] + running[:shift]:
                if target.process.poll() is not None:
                    continue  # stopped answering in an earlier round: said there
                for _attempt in range(RETRIES + 1):
                    try:
                        run = measure(target, api_key, body, seconds, connections)
                    except subprocess.CalledProcessError as error:  # wrk could not run
                        failed(target, round_index, error)
                        break
                    run["round"] = round_index
                    if balanced(run):
                        target.runs.append(run)
                        break
                    target.refused.append(run)
    finally:
        for target in running:
            if target.app != "django":  # the site's process, stopped with it
                stop(target)
    return summarise(running, rounds)


def summarise(running: list[Running], rounds: int) -> dict:
    by_name = {t.name: t for t in running}
    result: dict = {"targets": {}, "ratios": {}, "max_worker_share": MAX_WORKER_SHARE}
    for target in running:
        result["targets"][target.name] = {
            "rps": spread([r["rps"] for r in target.runs]),
            "cpu_us_per_request": spread([r["cpu_us_per_request"] for r in target.runs]),
            "p99_ms": spread([r["p99_ms"] for r in target.runs]),
            "busiest_worker_share": spread([r["busiest_worker_share"] for r in target.runs]),
            "non_2xx": sum(r["non_2xx"] for r in target.runs),
            "runs_refused_unbalanced": len(target.refused),
            "runs_failed": target.failed,
        }

    def per_round(a: Running, b: Running) -> list[float]:
        b_runs = {r["round"]: r["rps"] for r in b.runs}
        return [r["rps"] / b_runs[r["round"]] for r in a.runs if b_runs.get(r["round"])]

    bares = [t for t in running if t.app == "bare"]
    for interface in ("wsgi", "asgi"):
        fastest = max(
            (t for t in bares if t.server.interface == interface),
            key=lambda t: result["targets"][t.name]["rps"]["median"] or 0,
            default=None,
        )
        for target in running:
            if target.app != "site" or target.server.interface != interface:
                continue
            bare = by_name[f"{target.server.name}/bare"]
            result["ratios"][f"{target.name} vs {bare.name}"] = spread(per_round(target, bare))
            django = by_name.get(f"{target.server.name}/django")
            if django is not None:
                key = f"{target.name} vs {django.name} (Django's handler)"
                result["ratios"][key] = spread(per_round(target, django))
            if fastest is not None and fastest is not bare:
                key = f"{target.name} vs {fastest.name} (fastest bare)"
                result["ratios"][key] = spread(per_round(target, fastest))
    result["rounds"] = rounds
    return result


def print_table(result: dict) -> None:
    print(
        f"{'target':<28}{'req/s median [min-max]':>30}{'CPU µs/req':>12}{'busiest':>9}"
        f"{'refused':>9}"
    )
    for name, t in result["targets"].items():
        rps, cpu, share = t["rps"], t["cpu_us_per_request"], t["busiest_worker_share"]
        spread = f"{rps['median'] or 0:,.0f} [{rps['min'] or 0:,.0f}-{rps['max'] or 0:,.0f}]"
        print(
            f"{name:<28}{spread:>30}{cpu['median'] or 0:>12}{share['max'] or 0:>9}"
            f"{t['runs_refused_unbalanced']:>9}"
        )
        for why in t.get("runs_failed", []):
            print(f"  {name} failed: {why}")
    for name, ratio in result["ratios"].items():
        print(f"  {name:<56} {ratio['median']} [{ratio['min']}-{ratio['max']}] n={ratio['n']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="one round of 2 s: a smoke test")
    parser.add_argument("--hold", action="store_true", help="the steadiness check of make serve")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 2
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (make bench installs Debian's wrk)")
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from bench.run import load_body, prepare

    with tempfile.TemporaryDirectory() as workdir:
        env, platform, secret = prepare(Path(workdir))
        body = load_body(secret)
        if args.hold:
            from bench.hold import hold

            result = hold(
                env,
                platform.api_key,
                secret,
                body,
                seconds=2 if args.quick else 5,
                keepalive_rounds=2 if args.quick else 10,
                reconnect_rounds=1 if args.quick else 5,
            )
            print(json.dumps(result, indent=2))
        else:
            result = compare(
                env,
                platform.api_key,
                secret,
                body,
                servers=args.servers.split(","),
                rounds=args.rounds,
                seconds=args.seconds,
                connections=args.connections,
            )
            print_table(result)
        if args.output:
            args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
