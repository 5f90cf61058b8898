# strongbox: the two commands the README promises are `make demo` and `make test`.
# Both run the idempotent set-up first, which installs only what is missing.

VENV      ?= .venv
PYTHON    := $(VENV)/bin/python
STRONGBOX := $(VENV)/bin/strongbox

.PHONY: setup demo test unit lint typecheck bench clean

setup:
	@scripts/setup.sh

demo: setup
	@$(PYTHON) scripts/demo.py

test: setup
	$(PYTHON) -m pytest

unit: setup
	$(PYTHON) -m pytest tests/unit

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: setup
	$(PYTHON) benchmarks/boot.py

clean:
	rm -rf $(VENV) build src/*.egg-info
