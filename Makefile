# strongbox: the two commands the README promises are `make demo` and `make test`.
# Both run the idempotent set-up first, which installs only what is missing.

VENV      ?= .venv
PYTHON    := $(VENV)/bin/python
STRONGBOX := $(VENV)/bin/strongbox

.PHONY: setup demo test unit lint lint-only bench clean

setup:
	@scripts/setup.sh

demo: setup
	@$(PYTHON) scripts/demo.py

# Lint and type checks run first and fail the target on any finding.
test: setup lint-only
	$(PYTHON) -m pytest

unit: setup
	$(PYTHON) -m pytest tests/unit

lint: setup lint-only

lint-only:
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy

bench: setup
	$(PYTHON) benchmarks/boot.py

clean:
	rm -rf $(VENV) build src/*.egg-info
