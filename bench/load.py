"""The load side of `make bench`: free ports, the example project served as `make serve`
serves it (and with gunicorn, for `bench-pipeline` and `bench-scale`), wrk rounds, and
the server's CPU time per request and per worker (``bench/run.py``,
``bench/publickeys.py`` and ``bench/serving.py`` use them)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.balance import balanced_round, busiest_share

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    """A free port; within ``BENCH_PORTS`` (such as ``8350-8399``) when set."""
    if os.environ.get("BENCH_PORTS"):
        low, high = (int(n) for n in os.environ["BENCH_PORTS"].split("-"))
        for port in range(low, high + 1):
            if not _port_open(port):
                return port
        raise RuntimeError(f"no free port in {low}-{high}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_gunicorn(
    env: dict[str, str], port: int, secret: str, app: str = "project.wsgi"
) -> subprocess.Popen:
    """gunicorn as ``make serve SERVER=gunicorn`` runs it (``bench/pipeline.py`` and
    ``bench/scale.py`` measure through it)."""
    server_env = {
        **os.environ,
        **env,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "BENCH_HANDWRITTEN_SECRET": secret,
    }
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("gunicorn")), "-c", "project/gunicorn.conf.py", app],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/trivial", data=b"{}", timeout=1)
            return process
        except urllib.error.HTTPError:  # it answers (bench/bare.py: 400 to this body)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start: " + process.stderr.read().decode()[-2000:])


#: Worker processes of the servers ``start_site`` starts (``make serve``'s default).
SITE_WORKERS = 2


def start_site(env: dict[str, str], port: int, secret: str, app: str = "site") -> subprocess.Popen:
    """The example project (``app="site"``) or ``bench/bare.py``'s callable (``"bare"``)
    served as ``make serve`` serves it (``bench.serving.MAKE_SERVE``: Granian, 2 workers
    x 4 threads), in a process group of its own; the process carries ``workers``, the
    worker processes it runs (what a round's balance is judged against). Stop it with
    ``stop_site``."""
    from bench.serving import MAKE_SERVE, SERVERS, start

    running = start(SERVERS[MAKE_SERVE], app, port, env, secret, workers=SITE_WORKERS)
    running.process.workers = SITE_WORKERS
    return running.process


def stop_site(process: subprocess.Popen) -> None:
    """Stop a server ``start_site`` started (``SIGTERM`` to its group, as systemd does)."""
    from bench.serving import Running, stop

    stop(Running(None, "", 0, process, ""))


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_WRK_STATUS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_REQUESTS = re.compile(r"(\d+) requests in")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


class NotServed(RuntimeError):
    """A round of session starts not all answered 2xx: its figures would be the error
    answers' (the bench's platform is never enforced, its rate limit off)."""


def _wrk(
    url: str, api_key: str, body: str, seconds: int, connections: int, forged: bool = False
) -> dict:
    """One wrk round posting ``body`` (``bench/post.lua``; ``forged``: a new wrong
    signature each request). Raises :class:`NotServed`, with what the server answers
    now, when any answer was not 2xx."""
    extra = {"BENCH_BODY": body} | ({"BENCH_FORGED": "1"} if forged else {})
    run = wrk_round(url, api_key, "post.lua", extra, seconds, connections)
    if run["non_2xx"]:
        raise NotServed(
            f"{url}: {run['non_2xx']} of {run['requests']} answers were not 2xx; "
            f"one now: {answer_to(url, api_key, body)}"
        )
    return run


def answer_to(url: str, api_key: str, body: str) -> str:
    """One POST of ``body``: its status and the start of its answer, for an error message."""
    request = urllib.request.Request(
        url, data=body.encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Api-Key": api_key},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read(300)
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read(300)
    except OSError as error:
        return f"no answer ({error})"
    return f"{status} {text.decode('utf-8', 'replace')}"


def wrk_round(
    url: str, api_key: str, script: str, extra_env: dict[str, str], seconds: int, connections: int
) -> dict:
    """One wrk round with a script of ``bench/`` and what it reads from the environment:
    requests/s, p50 and p99, non-2xx answers and requests."""
    env = {**os.environ, "BENCH_API_KEY": api_key, **extra_env}
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(ROOT / "bench" / script), url,
    ]  # fmt: skip
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    percentiles = {p: float(v) * _UNITS[u] for p, v, u in _WRK_PERCENTILE.findall(output)}
    errors = _WRK_STATUS.search(output)
    return {
        "rps": float(_WRK_RPS.search(output).group(1)),
        "p50_ms": round(percentiles["50"], 3),
        "p99_ms": round(percentiles["99"], 3),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "requests": int(_WRK_REQUESTS.search(output).group(1)),
    }


def descendants(pid: int) -> list[int]:
    """Every process under ``pid``: the children of each of its threads (``/proc``
    lists a child under the thread that started it), and theirs."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def process_ticks(pids: list[int]) -> dict[int, int]:
    """CPU ticks (user + system, all threads) used so far by each of ``pids`` still alive."""
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def _worker_ticks(server: subprocess.Popen) -> dict[int, int]:
    """CPU ticks (user + system) used so far by a server's master and every process
    under it."""
    return process_ticks([server.pid, *descendants(server.pid)])


def _measured(server: subprocess.Popen, *args, run=None) -> dict:
    """A wrk round (``run``, else ``_wrk``, called with ``args``), with the server's CPU
    time per request, what a shared machine's other load changes least (requests/s fall
    when others take the cores; the work per request does not), and the busiest
    worker's share of it (a round one worker mostly served measures the balance)."""
    before = _worker_ticks(server)
    result = (run or _wrk)(*args)
    after = _worker_ticks(server)
    used = {pid: after[pid] - before.get(pid, 0) for pid in after if pid != server.pid}
    total = sum(after.values()) - sum(before.get(pid, 0) for pid in after)
    return result | {
        "cpu_us_per_request": round(
            total / os.sysconf("SC_CLK_TCK") * 1e6 / max(1, result["requests"]), 1
        ),
        "workers": server.workers,  # the workers it runs, idle or not (start_site's)
        "worker_ticks": sorted(used.values(), reverse=True),
        "busiest_worker_share": busiest_share(list(used.values())),
    }


def balanced_measured(server: subprocess.Popen, refused: int, *args, run=None) -> tuple[dict, int]:
    """``_measured`` until a round counts by bench/balance.py's rule (one worker doing
    more than 65% of a round measures the server's accepts, not the code), and ``refused``
    plus the rounds refused on the way."""
    return balanced_round(lambda: _measured(server, *args, run=run), refused)
