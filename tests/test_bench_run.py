"""``make bench``'s command line: every section it runs can be asked for alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import hostspeed
from bench.figures import spread
from bench.run import SECTIONS, argument_parser

RUN = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def test_every_section_main_runs_is_a_choice_of_only():
    run_by_main = set(re.findall(r'if "(\w+)" in sections', RUN.read_text()))
    assert run_by_main == set(SECTIONS)
    assert argument_parser().parse_args(["--only", *SECTIONS]).only == SECTIONS


def test_hold_runs_under_make_serves_server_unless_told():
    from bench.serving import MAKE_SERVE, SERVERS

    from .site_process import make_serve_command

    assert argument_parser().parse_args([]).hold_server == MAKE_SERVE
    assert argument_parser().parse_args(["--hold-server", "uwsgi"]).hold_server in SERVERS
    served = SERVERS[MAKE_SERVE]  # the same server, with the same interface
    command = make_serve_command(8000).split()
    assert any(word.endswith("/" + served.executable) for word in command)
    assert command[command.index("--interface") + 1] == served.interface


def test_an_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        argument_parser().parse_args(["--only", "nothing"])
    assert stopped.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_a_figure_is_its_median_with_its_spread():
    assert spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    assert spread([]) == {"median": None, "min": None, "max": None, "n": 0}


def test_a_targets_rounds_are_reported_as_their_medians_and_their_failures_summed():
    from bench.figures import median_run

    rounds = [
        {"rps": r, "p50_ms": 1.0, "p99_ms": p99, "cpu_us_per_request": 400.0, "non_2xx": bad}
        for r, p99, bad in ((4000.0, 9.0, 0), (1500.0, 30.0, 2), (4100.0, 8.0, 1))
    ]
    assert median_run(rounds) == {
        "rps": 4000.0, "p50_ms": 1.0, "p99_ms": 9.0, "cpu_us_per_request": 400.0, "non_2xx": 3,
    }  # fmt: skip


def test_a_run_of_some_sections_keeps_the_whole_runs_figures():
    from bench.run import RESULTS, results_file

    assert results_file(None) == RESULTS == results_file(SECTIONS)
    assert results_file(["public_keys"]).name == "results-public_keys.json"
    assert results_file(["hold", "serving", "hold"]).name == "results-hold-serving.json"


def test_a_round_one_worker_mostly_served_is_measured_again():
    """bench/balance.py's one rule: one worker doing more than 65% of a round is the
    server's accepts, not the code; the refusals are counted, and after RETRIES the next round
    counts whatever its balance (the ratios pair rounds one to one)."""
    from bench.balance import RETRIES, balanced_round

    def rounds(*shares):
        runs = iter([{"workers": 2, "busiest_worker_share": s} for s in shares])
        return lambda: next(runs)

    run, refused = balanced_round(rounds(0.99, 0.9, 0.55), 1)
    assert (run["busiest_worker_share"], refused) == (0.55, 3)
    run, refused = balanced_round(rounds(*[1.0] * RETRIES, 0.97))
    assert (run["busiest_worker_share"], refused) == (0.97, RETRIES)


@pytest.mark.parametrize("section", ["bench_session_start", "bench_flood"])
def test_every_served_round_of_make_bench_goes_through_the_balance_rule(section):
    """session_start, flood and pk_flood measure through balanced_measured, never a bare
    _measured whose round would count whatever one worker did."""
    import inspect

    from bench import publickeys, run

    source = inspect.getsource(getattr(run, section))
    assert "balanced_measured(" in source and "_measured(" not in source.replace(
        "balanced_measured(", ""
    )
    flood = inspect.getsource(publickeys.bench_key_flood)
    assert flood.count("balanced_measured(") == 2 and "_measured_bodies(" not in flood


@pytest.mark.parametrize(
    "section",
    ["run.bench_session_start", "run.bench_long_run", "run.bench_flood",
     "publickeys.bench_key_session_start", "publickeys.bench_key_flood"],
)  # fmt: skip
def test_make_bench_loads_make_serves_server(section):
    """The sections that load a server measure the one `make serve` runs (start_site:
    bench.serving.MAKE_SERVE, itself held to the Makefile), never gunicorn by default."""
    import importlib
    import inspect

    module, function = section.split(".")
    source = inspect.getsource(getattr(importlib.import_module(f"bench.{module}"), function))
    assert "start_site(" in source and "_start_gunicorn" not in source
    assert "stop_site(" in source and "killpg" not in source


def test_a_round_whose_starts_were_not_all_answered_2xx_is_no_figure(monkeypatch):
    """A full `make bench` once measured `serving` and `hold` on 503s (the platform's
    secrets left under a key the servers lacked): such a round ends the run, with
    what the server answers."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bench import load

    class Unavailable(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"error": {"code": "service_unavailable"}}).encode()
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/trusted-identity/v1/sessions"
    answered = {"rps": 9000.0, "p50_ms": 1.0, "p99_ms": 2.0, "requests": 45000}
    try:
        monkeypatch.setattr(load, "wrk_round", lambda *a: answered | {"non_2xx": 0})
        assert load._wrk(url, "key", "{}", 5, 16)["rps"] == 9000.0
        monkeypatch.setattr(load, "wrk_round", lambda *a: answered | {"non_2xx": 44990})
        with pytest.raises(load.NotServed, match=r"44990 of 45000 .* one now: 503 .*unavailable"):
            load._wrk(url, "key", "{}", 5, 16)
    finally:
        server.shutdown()
        server.server_close()


def test_the_timed_rekey_leaves_every_secret_under_the_servers_key(db, monkeypatch, settings):
    """`bulk` re-keys under a key only its own process holds, then back: the servers of
    the later sections, started with the environment's key, read every secret."""
    from bench.admin import timed_rekey
    from trusted_identity.crypto import generate_key
    from trusted_identity.keyring import get_key_ring
    from trusted_identity.services import platform_secrets

    from .factories import PlatformFactory

    monkeypatch.setenv("TRUSTED_IDENTITY_ENCRYPTION_KEYS", settings.TEST_ENCRYPTION_KEY)
    platforms = PlatformFactory.create_batch(3)
    before = [platform_secrets.current_secret_row(p).get_secret() for p in platforms]
    primary = get_key_ring().primary_key_id

    outcome, elapsed, peak = timed_rekey(generate_key())

    assert outcome.rekeyed == outcome.total == 3 and not outcome.failed
    assert elapsed > 0 and peak > 0
    rows = [platform_secrets.current_secret_row(p) for p in platforms]
    assert [row.get_secret() for row in rows] == before  # under the settings' ring alone
    assert {get_key_ring().key_id_of(row.ciphertext) for row in rows} == {primary}


# The order of Ed25519's group (RFC 8032) and of P-256's (FIPS 186-4, D.1.2.3).
_ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_the_benchs_forgeries_are_ones_the_verifier_must_check_in_full(alg):
    """make bench's forged public-key tokens cost what an attacker's best costs: each
    signature lies in the range its algorithm checks before any arithmetic, so none is
    refused by its size (random bytes were, half the time for RSA and 15 in 16 for EdDSA,
    and a forgery's figure then depended on the key drawn)."""
    import base64

    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from bench.publickeys import _forged
    from trusted_identity.privatekeys import TokenSigner, parse_private_key
    from trusted_identity.publickeys import generate_key_pair

    private_pem, public_pem = generate_key_pair(alg)
    signer = TokenSigner(parse_private_key(private_pem.encode()), "k")
    token = signer.token("user-1", 1_700_000_000, 1_700_003_600)
    public = load_pem_public_key(public_pem.encode())
    for _ in range(64):
        forged = _forged(token)
        head, _, encoded = forged.rpartition(".")
        assert head == token.rpartition(".")[0] and encoded != token.rpartition(".")[2]
        signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        assert len(signature) == len(base64.urlsafe_b64decode(token.rpartition(".")[2] + "=="))
        if alg == "RS256":
            assert int.from_bytes(signature, "big") < public.public_numbers().n
        elif alg == "EdDSA":
            assert int.from_bytes(signature[32:], "little") < _ED25519_ORDER
        else:
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            assert 0 < r < _P256_ORDER and 0 < s < _P256_ORDER


def test_a_rounds_cases_are_timed_in_turn_in_short_blocks_each_as_often_as_asked():
    """bench.verify.interleaved: a ratio compares calls made side by side (the cases take
    turns block by block, never one long run after another), every case makes exactly
    its calls a round, fewer calls than blocks included, and the collector is on."""
    import gc

    from bench.verify import BLOCKS, interleaved

    calls: list[str] = []
    collecting: set[bool] = set()
    rounds_started: list[int] = []
    cases = {
        name: (lambda name=name: calls.append(name) or collecting.add(gc.isenabled()), number)
        for name, number in (("raw", 5 * BLOCKS), ("first", BLOCKS), ("few", 3))
    }
    runs = interleaved(cases, rounds=2, before_round=lambda: rounds_started.append(len(calls)))

    assert rounds_started == [0, 5 * BLOCKS + BLOCKS + 3]
    first_round = calls[: rounds_started[1]]
    assert [first_round.count(name) for name in cases] == [5 * BLOCKS, BLOCKS, 3]
    turns = [name for n, name in enumerate(first_round) if n == 0 or first_round[n - 1] != name]
    assert turns[:6] == ["raw", "first", "few", "raw", "first", "few"]
    assert turns.count("raw") == BLOCKS and turns.count("first") == BLOCKS
    assert all(len(times) == 2 and all(t > 0 for t in times) for times in runs.values())
    assert collecting == {True}  # timed as a server runs them, the garbage collector on


def test_a_host_probe_says_how_fast_and_how_noisy_the_host_is():
    """``make bench`` probes the host at a run's start and end: the loop's best time, its
    median, the median over the best (1.0 quiet), all from loops actually timed."""
    figures = hostspeed.probe(0.2)
    assert figures["loops"] >= 2
    assert 0 < figures["loop_best_ms"] <= figures["loop_median_ms"]
    assert figures["median_over_best"] >= 1.0
    assert figures["median_over_best"] == pytest.approx(
        figures["loop_median_ms"] / figures["loop_best_ms"], abs=0.01
    )
    source = RUN.read_text()
    assert source.count("hostspeed.probe(") == 3  # at the start, at the end, and when stopped
