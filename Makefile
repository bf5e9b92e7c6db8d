# One entry point for everything. `make run` starts the service; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000

.PHONY: install run test lint bench load bench-pipeline bench-ws bench-market-data soak verify screenshot clean bench-memory bench-restart
.PHONY: test-crowd test-capacity run-cluster load-cluster failover

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y postgresql)
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The trading page's chart library (package.json, pinned by package-lock.json) and the
# system Chromium its browser tests drive (Playwright is pointed at it; no browser download).
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || (apt-get update && apt-get install -y nodejs npm)
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

install: $(VENV)/.installed node_modules/.installed

# web gets $(PORT) (honcho numbers ports from -p in Procfile order).
run: install
	mkdir -p var/redis logs
	$(PY) -m archive.migrate
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6390/0} $(VENV)/bin/honcho start -p $(PORT)

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# Many clients on one node, larger than in `make test` (which runs each crowd once):
# 1000 readers + 500 writers, 4 requests each, and a 1000-client WebSocket storm.
test-crowd: install
	CROWD_ROUNDS=4 STORM_CLIENTS=1000 STORM_SECONDS=5 $(PY) -m pytest -q -s tests/load

# 5000 idle WebSocket connections on one node held past the 25 s ping interval, then
# all receiving trades; prints memory per connection (about a minute).
test-capacity: install
	IDLE_PING_INTERVAL=25 $(PY) -m pytest -q -s tests/capacity

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) -m bench.engine_bench

# Whole pipeline under load (own redis-server, gunicorn, one worker; wrk as the client).
# LOAD_ARGS e.g. "--mode single --seconds 30 --clients 64 --profile" (py-spy, requirements-dev),
# "--compare" (then the same load against bench/floor.py: bare Flask + one Redis SET),
# "--log-level WARNING" (default INFO, production: an access line per POST),
# "--rate-limits count" (the limiter on, counting every request: its cost).
load: install
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	RATE_LIMITS=off $(PY) -m bench.load $(LOAD_ARGS)

bench-pipeline: load

# The same figures with the store on a local Redis Cluster (3 primaries + 3 replicas and a
# broker Redis): `make load-cluster`, or `make load LOAD_ARGS=--cluster`. The cost of
# REPLICA_ACKS: `make load LOAD_ARGS="--replica"` then `LOAD_ARGS="--replica --replica-acks 1"`.
load-cluster: install
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	RATE_LIMITS=off $(PY) -m bench.load --cluster $(LOAD_ARGS)

# The service on a local Redis Cluster under var/cluster/, for an operator (Ctrl-C stops it).
run-cluster: install
	PYTHONPATH=. $(PY) -m localrun.run_cluster

# Failover figures: kill -9 the primary under load, print what was acknowledged, lost,
# re-derived and how long writes and commits took to resume. FAILOVER_ARGS e.g.
# "--store cluster --symbols 6", "--replica-acks 0" (what a failover loses without WAIT).
failover: install
	PYTHONPATH=. $(PY) -m tests.ha.failover $(FAILOVER_ARGS)

# Crash soak: kill worker / redis-server / run a second worker under load, then check
# nothing lost or doubled (own redis-server, gunicorn, worker). ROUNDS=50 by default.
soak: install
	$(PY) -m bench.soak --rounds $${ROUNDS:-50}

# Replay every journal (the archive's part, then Redis's) and compare with what Redis and
# the archive hold together (REDIS_URL, ARCHIVE_URL; default the project's 6390 and SQLite).
# VERIFY_ARGS e.g. "--symbol BTC-USD" or "--rebuild" (refused while a worker holds the lease,
# and for a symbol that has archived history).
verify: install
	$(PY) -m archive.verify $(VERIFY_ARGS)

# WebSocket fan-out: own redis-server, gunicorn, worker; 1000 clients on trade+orderbook of
# BTC-USD/ETH-USD while orders flow. WS_BENCH_ARGS e.g. "--clients 1000 --rate 500
# --seconds 15", "--synthetic" (publish commits, no REST/worker), "--worker-class gthread".
bench-ws: install
	RATE_LIMITS=off $(PY) -m bench.ws_bench $(WS_BENCH_ARGS)

# What candles, the ticker's minute buckets and the book checksum cost the matching worker
# per trade (own redis-server; the commit path with and without them).
bench-market-data: install
	$(PY) -m bench.market_data_bench $(MD_BENCH_ARGS)

# The README's picture of the trading page, taken by its browser test mid-stream.
screenshot: install
	DASHBOARD_SCREENSHOT=docs/dashboard.png $(PY) -m pytest -q tests/e2e/test_dashboard_browser.py -k seeded_stream

# Redis memory under sustained flow with the archive mover on: flat after warm-up while the
# archive grows. MEMORY_ARGS e.g. "--orders 300000", "--no-mover", "--postgres".
bench-memory: install
	$(PY) -m bench.memory --sustained $(MEMORY_ARGS)

# Restart and verify cost with many journaled commands, with and without book checkpoints.
# RESTART_ARGS e.g. "--commands 1000000 --checkpoint-every 100000".
bench-restart: install
	$(PY) -m bench.restart $(RESTART_ARGS)

clean:
	rm -rf $(VENV) var logs .pytest_cache .hypothesis node_modules
