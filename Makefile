# The README's commands. Everything installs into .venv, so a fresh clone needs only Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint fmt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("ctiboard needs Python >= 3.11, this is " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The demo's PBX is the built-in simulator, which runs only when asked (docs/security.md).
demo: $(STAMP)
	CTIBOARD_ALLOW_SIMULATOR=1 $(BIN)/python manage.py demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ctiboard
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# make bench              full run (~16 min); make bench ARGS=--quick (~3 min); see bench/README.md
bench: $(STAMP)
	test -f $(VENV)/.bench-$(shell cksum < pyproject.toml | cut -d' ' -f1) || { \
	  $(BIN)/python -m pip install --quiet -e '.[dev,bench]' && \
	  rm -f $(VENV)/.bench-* && touch $(VENV)/.bench-$(shell cksum < pyproject.toml | cut -d' ' -f1); }
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
