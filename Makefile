# The two set-up commands of the README. Each creates .venv when missing, installs what it needs
# (re-installing only when pyproject.toml changed), then runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pathattn-installed
DEMO_OUT ?= demo_out

.PHONY: install browser demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip setuptools
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium, which the report's browser test drives (tests/report/test_browser.py); sudo when not root.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		sudo=$$([ "$$(id -u)" = 0 ] || command -v sudo); \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

demo: install
	$(BIN)/pathattn demo --out $(DEMO_OUT)

test: install browser
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python benchmarks/tile.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
