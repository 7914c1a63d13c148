# The two commands a newcomer needs: `make run` (the whole system) and `make test` (the suite).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install services migrate bench soak

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

services: install
	$(PY) scripts/ensure_services.py

migrate: services
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py setup_demo
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start

test: services
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/pytest --create-db -q

bench: migrate
	$(PY) bench/slots.py
	$(PY) bench/csv_import.py
	$(PY) bench/api_create_task.py
	$(PY) bench/dispatch.py
	$(PY) bench/controls.py

soak: migrate
	$(PY) bench/soak.py --json test-artifacts/soak.json
