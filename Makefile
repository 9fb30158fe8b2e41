# taskyard — the two commands a new user runs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
APP ?= examples.demo:app

.PHONY: django6 run test bench bench-scale bench-peers lint venv dev clean browser faketime chaos audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev,django]'
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed
dev: $(STAMP)

## Start the task server on SQLite with the demo app (dashboard on http://127.0.0.1:5050).
run: $(VENV)/.installed
	$(BIN)/taskyard --app $(APP) run

## Install Debian's chromium for the dashboard's browser tests when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' >/dev/null 2>&1 \
	  || echo "could not install chromium; browser tests will report it"; }

## Install Debian's faketime (libfaketime) for the chaos suite's clock-skew faults when it is missing.
faketime:
	@ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || { \
	  echo "installing faketime for the chaos suite's clock-skew faults"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime) >/dev/null 2>&1 \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime' >/dev/null 2>&1 \
	  || echo "could not install faketime; clock-skew scenarios will report it"; }

## The chaos suite (docs/reliability.md): real processes, seeded faults, histories and a checker.
## Options: make chaos CHAOS_ARGS="--minutes 10 --backend redis --fault worker-kill --seed 7"
chaos: $(STAMP) faketime
	$(BIN)/python -m chaos $(CHAOS_ARGS)
	$(BIN)/python -m chaos.fanin $(FANIN_ARGS)

## Django 6 (django.tasks) needs Python >= 3.12, in a venv of its own beside the 3.11 one (which
## has Django 5.2 and the django-tasks backport): tests/integration/test_django.py runs the
## example project's tests under both. Python: a python3.12/python3.13 that runs, else pyenv's.
DJANGO6_VENV := .venv-django6
PYTHON_DJANGO6 ?= $(shell for p in python3.12 python3.13; do $$p -c '' 2>/dev/null && command -v $$p && exit; done; \
  v=$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9]' | head -1); \
  [ -n "$$v" ] && echo "$$(pyenv prefix $$v)/bin/python3")

$(DJANGO6_VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON_DJANGO6)" ]; then \
	  if [ -n "$$CI" ]; then echo "error: no Python >= 3.12 for the Django 6 tests (CI needs it)"; exit 1; fi; \
	  echo "no Python >= 3.12 found (python3.12, python3.13, pyenv): the Django 6 tests will be skipped"; \
	else \
	  $(PYTHON_DJANGO6) -m venv $(DJANGO6_VENV) && $(DJANGO6_VENV)/bin/pip install -q --upgrade pip \
	  && $(DJANGO6_VENV)/bin/pip install -q -e '.[django,postgres]' && touch $@; \
	fi

django6: $(DJANGO6_VENV)/.installed

## Run the whole suite (lint first: style, types and the import layers are part of it).
## Three pytest-xdist workers: most tests wait on processes and leases, not on the CPU; the
## process topologies that judge timing run one after another (tests/conftest.py SERIAL).
test: lint browser faketime django6
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadgroup --durations=15

lint: $(STAMP)
	$(BIN)/ruff check src tests chaos
	$(BIN)/mypy src chaos
	$(BIN)/lint-imports

## Known vulnerabilities in the installed dependencies (PyPI's advisory data, through
## pip-audit). Not part of `make lint`: it needs that data service, which the development
## machine's package mirror does not carry; --strict fails when anything could not be audited.
audit: $(STAMP)
	$(BIN)/pip install -q 'pip-audit>=2.7'
	$(BIN)/pip-audit --strict --skip-editable

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.cpu
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.search_enqueue

## Cost as the work grows: 1,000,000 queued jobs per backend (sqlite, postgres, redis) —
## enqueue rate, store size per job, drain right after the bulk load against a 10k backlog,
## claim, count and listing latency; and the jobs table under churn, with and without VACUUM
## (15-40 minutes). Options: make bench-scale SCALE_ARGS="--jobs 200000 --backends postgres"
SCALE_ARGS ?= --churn 200000
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale $(SCALE_ARGS)

PEERS_VENV := bench/peers/.venv
SAQ_VENV := bench/peers/.venv-saq

## The peers (celery, rq, dramatiq, arq, procrastinate, huey, taskiq, streaq) in their own venv, pinned.
$(PEERS_VENV)/.installed: bench/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q --upgrade pip
	$(PEERS_VENV)/bin/pip install -q -r bench/peers/requirements.txt
	touch $@

## saq pins redis-py < 8, which the other peers' venv cannot have: a venv of its own.
$(SAQ_VENV)/.installed: bench/peers/requirements-saq.txt
	$(PYTHON) -m venv $(SAQ_VENV)
	$(SAQ_VENV)/bin/pip install -q --upgrade pip
	$(SAQ_VENV)/bin/pip install -q -r bench/peers/requirements-saq.txt
	touch $@

## Same workloads on taskyard and its peers, side by side (30-60 minutes, by machine load).
bench-peers: $(STAMP) $(PEERS_VENV)/.installed $(SAQ_VENV)/.installed
	$(BIN)/python -m bench.peers

clean:
	rm -rf $(VENV) $(DJANGO6_VENV) .pytest_cache .mypy_cache .ruff_cache
