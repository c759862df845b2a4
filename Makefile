# The two commands a newcomer needs (README.rst):
#   make demo   install everything into .venv and run the daemon (the demo on the simulator
#               when no Asterisk is configured; CONFIG=pbxis.toml for a real one)
#               make demo CONFIG=docs/demo-pjsip22.toml: the demo on a simulated Asterisk 22 (PJSIP)
#   make test   install everything (Chromium included), type-check (mypy), build the optional
#               compiled modules (cached: tests/support/compiled.py) and run the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CONFIG ?=
PYTEST_ARGS ?=

.PHONY: demo test test-compiled install install-test lint bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: setup.cfg setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.cfg setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test
	sh scripts/ensure-chromium
	sh scripts/ensure-redis

demo: install
	$(BIN)/twistd --pidfile= -n pbxis $(if $(CONFIG),--config $(CONFIG))

test: install-test
	$(BIN)/mypy
	$(BIN)/python -m tests.support.compiled --build-only
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The whole suite against the optional mypyc build (tests/support/compiled.py: built once,
# cached under build/mypyc-test); `make test` runs the compiled modules' quick tests against it.
test-compiled: install-test
	$(BIN)/python -m tests.support.compiled $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check pbxis twisted tests bench

bench: install-test
	$(BIN)/python bench/run_all.py

# Every bench once with --quick, the cluster benches too (make test skips those: each
# starts Redis, simulators and several twistd nodes, 40 s of a suite kept within ten minutes)
bench-smoke: install-test
	PBXIS_CLUSTER_BENCHES=1 $(BIN)/python -m pytest tests/test_bench_smoke.py tests/redis/test_redis_bench_smoke.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
