# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install, run the main job on the built-in synthetic data
#   make test   - install the test extras (rerank[testing] among them), run ruff and the whole
#                 test suite (hypothesis derandomized: the `ci` profile of tests/conftest.py)
#   make fuzz   - the hypothesis properties, random, with RERANK_FUZZ_FACTOR x more examples
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
OUT    ?= out

.PHONY: demo test fuzz lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# Stamps make re-runs fast: pip runs again only when pyproject.toml changes.
$(VENV)/.stamp-base: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[implicit]"
	touch $@

$(VENV)/.stamp-all: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[dev,testing,implicit,lightfm,spark,cornac]"
	touch $@ $(VENV)/.stamp-base

# MovieLens latest-small for the real-data part of the demo (rerank evaluate); also found
# through $RERANK_MOVIELENS_DIR (the folder holding ml-latest-small/).
MOVIELENS ?= ../shared/data/ml-latest-small

demo: $(VENV)/.stamp-base
	$(VENV)/bin/rerank demo --out $(OUT)
	@if [ -f "$(MOVIELENS)/ratings.csv" ]; then \
	  $(VENV)/bin/rerank evaluate --data "$(MOVIELENS)" --no-download --quiet --out $(OUT)/evaluate; \
	elif [ -n "$$RERANK_MOVIELENS_DIR" ] && { [ -f "$$RERANK_MOVIELENS_DIR/ml-latest-small/ratings.csv" ] || \
	     [ -f "$$RERANK_MOVIELENS_DIR/ml-latest-small.zip" ]; }; then \
	  $(VENV)/bin/rerank evaluate --no-download --quiet --out $(OUT)/evaluate; \
	else \
	  echo "MovieLens latest-small not found: skipping 'rerank evaluate'. To run it, download"; \
	  echo "  https://files.grouplens.org/datasets/movielens/ml-latest-small.zip, unzip it, and run"; \
	  echo "  make demo MOVIELENS=/path/to/ml-latest-small   (or set RERANK_MOVIELENS_DIR to its parent folder)"; \
	fi

test: $(VENV)/.stamp-all
	$(VENV)/bin/ruff check .
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

# Nightly-style: random examples (new ones every run), every property's budget x RERANK_FUZZ_FACTOR.
RERANK_FUZZ_FACTOR ?= 20
fuzz: $(VENV)/.stamp-all
	HYPOTHESIS_PROFILE=fuzz RERANK_FUZZ_FACTOR=$(RERANK_FUZZ_FACTOR) $(PY) -m pytest -q -x

lint: $(VENV)/.stamp-all
	$(VENV)/bin/ruff check .

bench: $(VENV)/.stamp-base
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info .pytest_cache .hypothesis
