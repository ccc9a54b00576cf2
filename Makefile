# The two entry points: `make run` serves the example app, `make test` runs the whole suite.
# Both build the virtual environment they need; `make test` also installs and starts what the tests need.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_WORKERS ?= 2

BENCH_VENV ?= benchmarks/.venv
# The extras each target installs the library with (the tools besides: examples/requirements.txt,
# requirements-dev.txt; nothing of the checkout is an extra of the wheel).
EXAMPLE_EXTRAS := sqlite,fastapi,migrations,email,oauth,mfa,pages,challenge
DEV_EXTRAS := $(EXAMPLE_EXTRAS),postgres,redis,forms,testing,breached-passwords

.PHONY: run run-postgres test lint docs bench system-deps clean screenshots

# Two stamps: `make run` installs only what the example needs; `make test` everything the tests need.
$(BIN)/.installed-example: pyproject.toml examples/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXAMPLE_EXTRAS)]' -r examples/requirements.txt
	touch $@

$(BIN)/.installed: pyproject.toml requirements-dev.txt examples/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(DEV_EXTRAS)]' -r requirements-dev.txt
	touch $@ $(BIN)/.installed-example

system-deps:
	bash scripts/system-deps.sh

## Serve the example app on http://localhost:8000 (SQLite file in the working directory; DATABASE_URL for another).
## Mail links and passkeys follow APP_BASE_URL, which follows PORT unless set.
run: $(BIN)/.installed-example
	APP_BASE_URL="$${APP_BASE_URL:-http://localhost:$(PORT)}" $(BIN)/uvicorn examples.app.main:app --host $(HOST) --port $(PORT)

## The same on PostgreSQL: DATABASE_URL=postgresql://... if set, else a throwaway local server (needs postgresql-15).
run-postgres: $(BIN)/.installed
	$(BIN)/python -m examples.run_postgres --host $(HOST) --port $(PORT)

## Refresh the screenshots in docs/screenshots/ (shown in the README and the docs) from the browser suite.
DOC_SHOTS ?= desktop-05-sessions 390-04-account 360-02-sign-up-mistake desktop-03-outbox desktop-17-cross-site-sign-out
screenshots: $(BIN)/.installed system-deps
	$(BIN)/pytest -q -p no:xdist tests/test_example_browser.py
	mkdir -p docs/screenshots
	for shot in $(DOC_SHOTS); do cp test-artifacts/screenshots/$$shot.png docs/screenshots/$$shot.png; done
	if command -v pngquant >/dev/null; then pngquant --force --skip-if-larger --ext .png docs/screenshots/*.png || true; fi

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict lucia_fastapi examples

## The whole suite: lint and types, the docs site, then every test on SQLite and on a throwaway PostgreSQL 15 server.
test: $(BIN)/.installed system-deps lint docs
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

## The documentation site, built strictly (a warning is an error) into a throwaway directory; `mkdocs serve` previews.
docs: $(BIN)/.installed
	@site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && \
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir "$$site" && echo "docs: built strictly"

$(BENCH_VENV)/.installed: pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[postgres,redis,$(EXAMPLE_EXTRAS)]' -r examples/requirements.txt -r benchmarks/requirements.txt
	touch $@

## Every contender side by side in one run (PostgreSQL, one uvicorn worker each, wrk): benchmarks/results/.
bench: $(BENCH_VENV)/.installed
	bash scripts/system-deps.sh bench
	$(BENCH_VENV)/bin/python -m benchmarks.run $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.revocation
	$(BENCH_VENV)/bin/python -m benchmarks.sign_in_flood_devices --database sqlite
	$(BENCH_VENV)/bin/python -m benchmarks.sign_in_flood_devices --database postgresql
	$(BENCH_VENV)/bin/python -m benchmarks.sign_in_flood_devices --database sqlite --challenge always

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
