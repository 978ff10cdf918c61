# LabShare: `make run` for the demo, `make test` for the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app run
HOST ?= 127.0.0.1
PORT ?= 5000
# pytest-xdist workers; each module runs whole on one worker (its servers start once)
PYTEST_WORKERS ?= 2
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadscope
ZH_HANS := labshare/translations/zh_Hans_CN/LC_MESSAGES

.PHONY: run test test-fast lint format translations extract-messages bench soak install install-dev clean serve

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
	@# Babel resolves zh_CN to zh_Hans_CN, and gettext looks for that folder only
	mkdir -p $(ZH_HANS) && rm -f $(ZH_HANS)/messages.mo
	$(BIN)/pybabel -q compile --use-fuzzy -l zh_CN -o $(ZH_HANS)/messages.mo \
		-i labshare/translations/zh_CN/LC_MESSAGES/messages.po

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
	$(BIN)/pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

# The inner loop: SQLite only, no browser, no real servers or processes.
test-fast: install-dev translations
	$(BIN)/pytest $(PYTEST_XDIST) --db sqlite -m "not slow and not browser" $(PYTEST_ARGS)

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
