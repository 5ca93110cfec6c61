# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

# Python caches bytecode by default; some machines' environments turn that off
# (PYTHONDONTWRITEBYTECODE=1), which makes each of the suite's ~300 processes (CLI
# commands, servers) compile the app's ~100 modules again: 0.51 s a CLI start against
# 0.38 with the cache, and pytest's rewritten test modules are not cached either.
unexport PYTHONDONTWRITEBYTECODE


.PHONY: help install run serve serve-checks serve-asgi bench bench-steadiness bench-pipeline bench-scale test test-postgres test-pgbouncer test-matrix node-deps dist check-dist docs lint migrate demo screenshots clean

help:
	@echo "make run    - install, migrate, create the demo space and admin login, serve on $(HOST):$(PORT)"
	@echo "make test   - install and run the whole test suite (a worker per core; WORKERS=0: one process)"
	@echo "make test-postgres - the database tests on PostgreSQL (POSTGRES_URL, 127.0.0.1:5432 by default)"
	@echo "make test-pgbouncer - the PostgreSQL HTTP, concurrency, prune and revocation tests through PgBouncer"
	@echo "make serve  - WSGI: Granian (SERVER=gunicorn or uwsgi), DEBUG off, settings from the environment"
	@echo "make serve-asgi - ASGI: uvicorn (uvloop, httptools) with the lean ASGI door"
	@echo "make bench  - benchmarks: a table, and bench/results.json"
	@echo "make bench-steadiness - make bench three times in a row, every ratio of the three side by side"
	@echo "make bench-pipeline - counts under a flood of distinct versions: bench/pipeline-results.json"
	@echo "make bench-scale - cost as the data grows (PostgreSQL): bench/scale-results.json"
	@echo "make lint   - ruff"
	@echo "make dist   - build the sdist and the wheel into dist/ (offline)"
	@echo "make check-dist - dist, then twine check --strict and check-wheel-contents"
	@echo "make docs   - the documentation site into docs/_build/html (Sphinx, offline)"
	@echo "make test-matrix - the suite on Python 3.10/Django 5.2, 3.12/6.0, 3.13/6.1 (nox)"
	@echo "make screenshots - regenerate docs/screenshots/ (Debian's chromium, no download)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# A local .env for the demo: a random SECRET_KEY and a real encryption key, made once.
.env: | $(STAMP)
	$(BIN)/python -c "import secrets; from trusted_identity.crypto import generate_key; \
	print('DEBUG=1'); print('SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('TRUSTED_IDENTITY_ENCRYPTION_KEYS=' + generate_key())" > .env
	@echo "Wrote .env (DEBUG on, a random SECRET_KEY and a new encryption key)."

migrate: install .env
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput

demo: migrate
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py demo_setup

run: demo
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production-style serving with settings from the environment (DATABASE_URL, CACHE_URL,
# SECRET_KEY, TRUSTED_IDENTITY_ENCRYPTION_KEYS, ALLOWED_HOSTS). WSGI under Granian by
# default: bench/serving.py measured it beside gunicorn and uWSGI (docs/performance.md),
# it holds its throughput where gunicorn's gthread workers pile connections on one
# worker, and SIGTERM stops it gracefully (each worker writes its buffered counts).
# Granian reads GRANIAN_* from the environment for the rest of its options (for example
# GRANIAN_LOG_ACCESS_ENABLED=1 for an access log). SERVER=gunicorn (project/gunicorn.conf.py)
# or SERVER=uwsgi for the other candidates (docs/deploying.md: what each costs and keeps).
SERVER ?= granian
# uWSGI's graceful stop: echo q > .uwsgi.fifo (docs/deploying.md)
UWSGI_FIFO ?= $(CURDIR)/.uwsgi.fifo
WEB_CONCURRENCY ?= 2
SERVE_THREADS ?= 4
SERVE_gunicorn = $(BIN)/gunicorn -c project/gunicorn.conf.py project.wsgi
SERVE_uwsgi = $(BIN)/uwsgi --http11-socket $(HOST):$(PORT) --module project.wsgi:application \
	--master --processes $(WEB_CONCURRENCY) --threads $(SERVE_THREADS) --enable-threads \
	--die-on-term --need-app --master-fifo $(UWSGI_FIFO)
# A worker that dies is started again, as gunicorn's arbiter does; a stop waits up to 30 s
# for the requests in hand (gunicorn's graceful timeout), then ends the workers.
SERVE_granian = $(BIN)/granian --interface wsgi --host $(HOST) --port $(PORT) \
	--workers $(WEB_CONCURRENCY) --blocking-threads $(SERVE_THREADS) --no-ws \
	--respawn-failed-workers --workers-kill-timeout 30 project.wsgi:application

serve-checks: export CACHE_URL ?= redis://127.0.0.1:6379/0
serve-checks: install
	DEBUG=0 $(BIN)/python manage.py check --deploy --fail-level ERROR
	DEBUG=0 $(BIN)/python manage.py migrate --noinput
	DEBUG=0 $(BIN)/python manage.py collectstatic --noinput -v0

serve: export CACHE_URL ?= redis://127.0.0.1:6379/0
serve: serve-checks
	@test -n "$(SERVE_$(SERVER))" || { echo "SERVER must be gunicorn, uwsgi or granian"; exit 2; }
	DEBUG=0 HOST=$(HOST) PORT=$(PORT) WEB_CONCURRENCY=$(WEB_CONCURRENCY) $(SERVE_$(SERVER))

# The example's ASGI application (project/asgi.py: the lean ASGI door in front of
# Django's handler) under uvicorn with uvloop and httptools, the best ASGI server
# bench/serving.py measured; lifespan on, so each worker writes its counts at a stop;
# REMOTE_ADDR stays the peer's, as under gunicorn (CLIENT_IP_HEADER reads the proxy's).
serve-asgi: export CACHE_URL ?= redis://127.0.0.1:6379/0
serve-asgi: serve-checks
	DEBUG=0 $(BIN)/uvicorn project.asgi:application --host $(HOST) --port $(PORT) \
		--workers $(WEB_CONCURRENCY) --loop uvloop --http httptools --lifespan on \
		--no-access-log --no-proxy-headers

# The README's jsonwebtoken example (tests/test_token_interop.py) needs the npm package;
# it is installed here, outside the app, whenever npm is on the machine.
NODE_DEPS := .node_deps
NODE_STAMP := $(NODE_DEPS)/.installed
export NODE_PATH ?= $(CURDIR)/$(NODE_DEPS)/node_modules

$(NODE_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --prefix $(NODE_DEPS) jsonwebtoken@9 >/dev/null \
		&& touch $(NODE_STAMP); \
	else echo "npm not found: the Node interop tests skip (and fail when CI is set)"; fi

node-deps: $(NODE_STAMP)

# The suite in parallel with pytest-xdist: a worker per core, each with its own test
# database, Redis keys, ports and temporary files (tests/isolation.py), so two runs at
# once on one machine keep apart too. WORKERS=0 runs it in one process.
WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(WORKERS)

test: install node-deps
	$(PYTEST)

# The database tests on PostgreSQL (127.0.0.1:5432, trust auth on this project's machines).
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/trusted_identity
# Tests marked any_database (servers on SQLite files of their own, programs in other
# languages, and every test that can't reach the test database: tests/conftest.py marks
# them) run alike on any DATABASE_URL: make test runs them, this leaves them out. So
# does it the browser tests (what Chromium adds is the page's script and layout; the
# same views' queries run here through Django's test client), and it draws a quarter of
# the property-based examples (the same inputs make test draws in full; here the
# question is the database): about 45% of this run's time on 2 cores.
POSTGRES_FUZZ_SCALE ?= 0.25
test-postgres: install node-deps
	DATABASE_URL=$(POSTGRES_URL) FUZZ_SCALE=$${FUZZ_SCALE:-$(POSTGRES_FUZZ_SCALE)} \
		$(PYTEST) -m "not any_database and not browser"

# The tests a transaction pooler could break (HTTP, concurrency, counts, prune,
# rotation and revocation, the CLI) on PostgreSQL through Debian's PgBouncer in
# transaction pooling, started on a free port for the run (tests/pgbouncer.py).
PGBOUNCER_TESTS ?= tests/test_pgbouncer.py tests/test_http.py tests/test_consistency.py \
	tests/test_key_rotation.py tests/test_rotation_bulk.py tests/test_countwrites.py \
	tests/test_outcomes.py tests/test_lean_path.py tests/test_cli.py \
	tests/services/test_retention.py tests/services/test_retention_details.py \
	tests/services/test_memberships.py tests/admin/test_revocation.py
test-pgbouncer: install node-deps
	$(BIN)/python -m tests.pgbouncer $(POSTGRES_URL) -- $(PYTEST) $(PGBOUNCER_TESTS)

# The package as an index gets it: the sdist, and the wheel built from it. Offline: the
# venv's setuptools and build (the dev extra), no isolated build environment to download.
dist: install
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

check-dist: dist
	$(BIN)/twine check --strict dist/*
	$(BIN)/check-wheel-contents dist/*.whl

# The documentation site (docs/: Sphinx with MyST, the docs extra) into docs/_build/html,
# offline. Warnings are errors (-W), all reported (--keep-going); -n checks every internal
# reference, so a link to a missing page or heading anchor fails; -E re-reads every page,
# so the reference generated from the code is never a stale copy.
SPHINXOPTS ?= -W --keep-going -n -E -q
docs: install
	$(BIN)/python -m sphinx $(SPHINXOPTS) -b html docs docs/_build/html
	@echo "Built docs/_build/html/index.html"

# The version matrix of noxfile.py, with the Pythons pyenv has installed.
# NOX_ARGS=--no-install reuses the virtualenvs as they are (.ci/run makes them first).
NOX_ARGS ?=
test-matrix: install node-deps
	WORKERS=$(WORKERS) $(BIN)/nox $(NOX_ARGS)

# The README's screenshots of the admin settings page, light and dark, from demo data
# in a throw-away database; needs Debian's chromium (/usr/bin/chromium).
screenshots: install
	$(BIN)/python docs/screenshots.py

# Benchmarks (docs/performance.md): PostgreSQL and Redis on loopback when they answer.
bench: install
	@command -v wrk >/dev/null 2>&1 || { echo "Installing Debian's wrk (load generator)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.run

# make bench three times in a row, each run's results kept (bench/steadiness/run-N.json),
# then every ratio of the runs side by side (bench/steadiness.py): it fails when one is
# more than 10% from the runs' median. About 45 minutes; run it on a quiet machine.
STEADY_RUNS ?= 3
bench-steadiness: install
	mkdir -p bench/steadiness
	for n in $$(seq 1 $(STEADY_RUNS)); do \
		$(MAKE) --no-print-directory bench && cp bench/results.json bench/steadiness/run-$$n.json \
		|| exit 1; \
	done
	$(BIN)/python -m bench.steadiness $$(seq -f bench/steadiness/run-%g.json 1 $(STEADY_RUNS))

# The count pipeline under a flood (issue 19): statements per 1,000 forged starts, the
# writer's backlog after a 45 s flood, counts lost on SIGTERM. About two minutes.
bench-pipeline: install
	@command -v wrk >/dev/null 2>&1 || { echo "Installing Debian's wrk (load generator)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.pipeline

# Cost as the data grows, in a throw-away PostgreSQL database (127.0.0.1:5432); the
# full sizes by hand: make bench-scale SIZES=10x7,200x90,1000x90
SIZES ?= 10x7,200x90
bench-scale: install
	@command -v wrk >/dev/null 2>&1 || { echo "Installing Debian's wrk (load generator)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m bench.scale --sizes $(SIZES)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache db.sqlite3 .env dist build .nox docs/_build
