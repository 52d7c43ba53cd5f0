# POD Engine — common tasks. Every target installs what it needs first (scripts/bootstrap.sh).
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: bootstrap up test test-unit lint format typecheck schemas bench lock clean

bootstrap:
	@bash scripts/bootstrap.sh

up: bootstrap
	$(PY) -m devstack.stack

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

# The quick loop: no broker, no database, no stack.
test-unit: bootstrap
	$(PY) -m pytest -m unit -q $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy shared services simulators devstack bench tests

format: bootstrap
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

schemas: bootstrap
	$(PY) -m shared.schemas
	$(PY) -m shared.asyncapi

bench: bootstrap
	$(PY) bench/broker.py

lock:
	@rm -rf /tmp/pod-lock && python3 -m venv /tmp/pod-lock && /tmp/pod-lock/bin/pip install -q '.[dev]' \
	  && (echo "# Locked versions for reproducible installs (pip install -r requirements.lock). Regenerate with"; \
	      echo "# \`make lock\` after changing pyproject.toml."; \
	      /tmp/pod-lock/bin/pip freeze --exclude pod-engine) > requirements.lock

clean:
	rm -rf .state
