# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install, run the main job on the built-in synthetic data
#   make test   - install the test extras, run ruff and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
OUT    ?= out

.PHONY: demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# Stamps make re-runs fast: pip runs again only when pyproject.toml changes.
$(VENV)/.stamp-base: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.stamp-all: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[dev,implicit,lightfm,spark]"
	touch $@ $(VENV)/.stamp-base

demo: $(VENV)/.stamp-base
	$(VENV)/bin/rerank demo --out $(OUT)

test: $(VENV)/.stamp-all
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(VENV)/.stamp-all
	$(VENV)/bin/ruff check .

bench: $(VENV)/.stamp-base
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info .pytest_cache .hypothesis
