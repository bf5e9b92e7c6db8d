# One entry point for everything. `make run` starts the service; `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000

.PHONY: install run test lint bench load bench-ws soak verify clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

run: install
	mkdir -p var logs
	$(VENV)/bin/honcho start

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) -m bench.engine_bench

clean:
	rm -rf $(VENV) var logs .pytest_cache .hypothesis
