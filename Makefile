# `make up` runs prodops on this machine; `make test` is what CI runs (see .ci/run).

# uv comes from PATH, or is installed into a virtualenv of its own under .prodops/.
UV_VENV := .prodops/tools
UV := $(shell command -v uv 2>/dev/null || echo $(UV_VENV)/bin/uv)
PYPROJECTS := pyproject.toml shared/pyproject.toml cli/pyproject.toml $(wildcard services/*/pyproject.toml)
MYPY_PATHS := shared/src cli/src services/feedback/src services/roadmap/src services/insights/src tests \
	$(wildcard bench)

.PHONY: install up test chaos bench

install: .venv/.synced

$(UV_VENV)/bin/uv:
	python3 -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet uv

# Re-synced whenever the lock file or a pyproject.toml changes.
.venv/.synced: uv.lock $(PYPROJECTS) | $(UV)
	$(UV) sync --frozen
	touch $@

# exec: `make` hands over to `prodops up`, so Ctrl-C and SIGTERM reach it directly.
up: install
	exec .venv/bin/prodops up

test: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy $(MYPY_PATHS)
	.venv/bin/pytest

# The chaos suite at full size (`make test` runs each case with a small burst): real processes,
# a fault mid-burst, then the ledger and a clean rebuild must agree. Larger: PRODOPS_CHAOS_SCALE=50.
PRODOPS_CHAOS_SCALE ?= 10
chaos: install
	PRODOPS_CHAOS_SCALE=$(PRODOPS_CHAOS_SCALE) .venv/bin/pytest tests/chaos -rP

# Benchmarks (bench/, issue #6) at quick sizes; never part of `test`. The issue's sizes:
# `.venv/bin/python -m bench --full`. Figures go to bench/results/.
bench: install
	.venv/bin/python -m bench
