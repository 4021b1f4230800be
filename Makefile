# SmartPOS core. `make run` brings the platform up; `make test` runs every test. See README.md.
SHELL := /bin/bash
UV := $(shell scripts/ensure-uv.sh)
RUN := $(UV) run --frozen

.PHONY: help sync infra migrate run test pytest lint format fuzz bench bench-tokens bench-feed bench-migrations

help:
	@echo "make run   - infrastructure, migrations, admin client, then the three services (Ctrl-C stops them)"
	@echo "make test  - infrastructure, fresh test databases, the whole pytest suite, ruff and mypy"
	@echo "make lint  - ruff and mypy only"
	@echo "make fuzz  - schemathesis over every operation of every service, as every role (thorough; report in .fuzz/)"

sync:
	@$(UV) sync --frozen --quiet

infra: sync
	@$(RUN) python scripts/infra.py

migrate: infra
	@$(RUN) smartpos migrate all upgrade head

run: migrate
	@mkdir -p .infra && $(RUN) smartpos admin bootstrap > .infra/admin-client.json && chmod 600 .infra/admin-client.json
	@echo "[run] admin client credentials (smartpos admin bootstrap): .infra/admin-client.json"
	@echo "[run] starting portal :$${PORTAL_PORT:-8000}, smarttab :$${SMARTTAB_PORT:-8001}, device-auth :$${AUTH_PORT:-8002} (Ctrl-C stops them all)"
	@$(RUN) honcho start -f Procfile

test: infra
	@$(RUN) pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory lint

pytest: infra
	@$(RUN) pytest $(PYTEST_ARGS)

lint: sync
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy shared/smartpos_shared services/portal/portal services/smarttab/smarttab services/device-auth/device_auth smartpos_cli tests/fuzz

# The thorough OpenAPI fuzz run (`make test` runs the same test with the short profile). docs/fuzzing.md.
# SMARTPOS_FUZZ_SEED=N replays a run; SMARTPOS_FUZZ_MAX_EXAMPLES / SMARTPOS_FUZZ_COVERAGE change its size.
fuzz: infra
	@mkdir -p .fuzz
	@SMARTPOS_FUZZ_PROFILE=thorough $(RUN) pytest tests/fuzz -q --timeout 1800 --junitxml=.fuzz/junit.xml $(PYTEST_ARGS)

format: sync
	@$(RUN) ruff format .
	@$(RUN) ruff check --fix .

# Benchmarks print their figures and the ceiling they compare against, and write bench-results.json.
bench: migrate
	@$(RUN) python bench/run.py

bench-tokens: migrate
	@$(RUN) python bench/tokens.py

bench-feed: migrate
	@$(RUN) python bench/feed.py

bench-migrations: infra
	@$(RUN) python bench/migrations.py
