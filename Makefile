# LabShare: `make run` for the demo, `make test` for the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app run
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test lint format translations extract-messages bench soak install install-dev clean serve

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

translations: $(VENV)/.installed
	$(BIN)/pybabel -q compile --use-fuzzy -d labshare/translations

extract-messages: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o labshare/translations/messages.pot .
	$(BIN)/pybabel update -i labshare/translations/messages.pot -d labshare/translations --no-fuzzy-matching

run: install translations
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	$(FLASK) run --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit -q -r labshare -lll

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install-dev translations lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install-dev translations
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# PostgreSQL with real processes: gunicorn, 8 clients, staff at end times and two
# schedulers running every job every second (TEST_POSTGRES_URL's server; a
# database of its own). Fails on any 5xx, deadlock, failed job run or broken invariant.
SOAK_SECONDS ?= 60
soak: install-dev translations
	$(BIN)/python -m bench.soak --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
