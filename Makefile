# Two commands matter (see README): `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := $(wildcard plugins/*)
# Reinstall Python dependencies only when their declarations change.
DEPS_STAMP := $(VENV)/.deps-$(shell cat pyproject.toml $(wildcard plugins/*/pyproject.toml) | sha1sum | cut -c1-12)

.PHONY: setup native demo test test-rust test-python check bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip

$(DEPS_STAMP): | $(PY)
	$(PIP) install "maturin>=1.7,<2" setuptools wheel
	$(PIP) install numpy pyarrow pluggy typer rich torch scipy matplotlib tomli-w \
		pytest hypothesis scikit-learn polars "dask[distributed]" ruff mypy "optuna>=3.4"
	rm -f $(VENV)/.deps-*
	touch $@

native: $(DEPS_STAMP)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release -q

setup: native
	@for p in $(PLUGINS); do \
		if ! $(PY) -c "import importlib.metadata as m,sys; m.distribution('$$(basename $$p)')" 2>/dev/null; then \
			$(PIP) install -q --no-build-isolation --no-deps -e $$p || exit 1; fi; done

demo: setup
	$(VENV)/bin/leanrec bench default

test-rust:
	cargo test -q -p leanrec-core

test-python: setup
	$(PY) -m pytest -q

# Lint (rules in pyproject's [tool.ruff]) and the native module's stub (_native.pyi) against the built module.
check: setup
	$(VENV)/bin/ruff check .
	MYPYPATH=harness $(PY) -m mypy.stubtest leanrec._native

test: test-rust check test-python

# On-demand benchmarks (minutes; results in benchmarks/results/). Not part of `make test`.
bench: setup
	$(PY) benchmarks/bench_stats.py --rows 10000000 --threads 2
	$(PY) benchmarks/bench_frappe_training.py --seeds 3

clean:
	rm -rf target $(VENV)
