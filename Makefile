# SmartPOS core. `make run` brings the platform up; `make test` runs every test. See README.md.
SHELL := /bin/bash
# scripts/ensure-uv.sh prints the path of uv, installing it into .infra/uv when the machine has none; when it
# cannot, it says why on stderr and make stops here rather than run some other `sync --frozen`.
UV := $(shell scripts/ensure-uv.sh)
ifneq ($(.SHELLSTATUS),0)
$(error uv could not be found or installed (scripts/ensure-uv.sh says why above))
endif
ifeq ($(strip $(UV)),)
$(error uv could not be found or installed (scripts/ensure-uv.sh printed no path))
endif
RUN := $(UV) run --frozen

.PHONY: help sync infra browser screenshots migrate run test pytest lint format fuzz bench bench-tokens bench-feed bench-migrations bench-overnight bench-seed test-fresh

help:
	@echo "make run   - infrastructure, migrations, admin client, then the four services and the scheduler (Ctrl-C stops them)"
	@echo "make test  - infrastructure, fresh test databases, the whole pytest suite, ruff and mypy"
	@echo "make lint  - ruff and mypy only"
	@echo "make fuzz  - schemathesis over every operation of every service, as every role (thorough; report in .fuzz/)"
	@echo "make test-fresh - make run, the README walkthrough and make test on a fresh Debian 12 root (root, 30-60 min)"

sync:
	@$(UV) sync --frozen --quiet --compile-bytecode

infra: sync
	@$(RUN) python scripts/infra.py

migrate: infra
	@$(RUN) smartpos migrate all upgrade head

run: migrate
	@mkdir -p .infra && $(RUN) smartpos admin bootstrap > .infra/admin-client.json && chmod 600 .infra/admin-client.json
	@echo "[run] admin client credentials (smartpos admin bootstrap): .infra/admin-client.json"
	@echo "[run] starting portal :$${PORTAL_PORT:-8000}, smarttab :$${SMARTTAB_PORT:-8001}, device-auth :$${AUTH_PORT:-8002}, console :$${CONSOLE_PORT:-8003} and the scheduler (Ctrl-C stops them all)"
	@# Tokens name their issuer; with AUTH_PORT moved, the default issuer (port 8002) would be someone else's.
	@# The merchant dashboard (smarttab /dashboard) and the console's pages sign people in through device-auth:
	@# their callbacks are registered.
	@SMARTPOS_AUTH_ISSUER="$${SMARTPOS_AUTH_ISSUER:-http://127.0.0.1:$${AUTH_PORT:-8002}}" \
	 SMARTTAB_PUBLIC_URL="$${SMARTTAB_PUBLIC_URL:-http://127.0.0.1:$${SMARTTAB_PORT:-8001}}" \
	 SMARTTAB_PORTAL_URL="$${SMARTTAB_PORTAL_URL:-http://127.0.0.1:$${PORTAL_PORT:-8000}}" \
	 CONSOLE_PUBLIC_URL="$${CONSOLE_PUBLIC_URL:-http://127.0.0.1:$${CONSOLE_PORT:-8003}}" \
	 CONSOLE_PORTAL_URL="$${CONSOLE_PORTAL_URL:-http://127.0.0.1:$${PORTAL_PORT:-8000}}" \
	 AUTH_WEB_CLIENTS="$${AUTH_WEB_CLIENTS:-{\"smartpos-dashboard\": [\"http://127.0.0.1:$${SMARTTAB_PORT:-8001}/dashboard/callback\"], \"smartpos-console\": [\"http://127.0.0.1:$${CONSOLE_PORT:-8003}/console/callback\"]}}" \
	 $(RUN) honcho start -f Procfile

test: infra browser
	@$(RUN) pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory lint

pytest: infra browser
	@$(RUN) pytest $(PYTEST_ARGS)

# Every web page at desktop and phone width into docs/screenshots/ (a platform of its own, then dropped).
screenshots: infra browser
	@$(RUN) python scripts/screenshots.py

# Debian's chromium for the browser tests (tests/web; Playwright drives it).
browser: sync
	@$(RUN) python scripts/infra.py --browser

lint: sync
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy shared/smartpos_shared services/portal/portal services/smarttab/smarttab services/device-auth/device_auth services/console/console terminal/smartpos_terminal smartpos_cli tests bench scripts

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

# The overnight run at 10,000 stores x 100 orders and how it grows (docs/benchmarks.md); ~10 minutes.
bench-overnight: migrate
	@$(RUN) python bench/overnight.py

bench-seed: migrate
	@$(RUN) python bench/seed.py

bench-migrations: infra
	@$(RUN) python bench/migrations.py

# A newcomer's machine: a fresh Debian 12 root (debootstrap), where make run, the README walkthrough and make test
# run as root and as a user with sudo. Needs root on a Debian host; 30-60 minutes; not part of make test or CI.
test-fresh:
	@python3 scripts/test_fresh.py $(TEST_FRESH_ARGS)
