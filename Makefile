# Two entry points for a fresh clone: `make demo` (main job) and `make test` (test suite).
# Both create ./.venv on first use and install the package with the CPU pins.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.finecliper-installed
export HF_HUB_OFFLINE := 1

.PHONY: venv demo test lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints/cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints/cpu.txt -e '.[faces,test]'
	$(PY) -m pip install -q --no-deps -c constraints/cpu.txt mediapipe
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/finecliper demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
