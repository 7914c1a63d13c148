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
	# Served over plain HTTP on 127.0.0.1: no HTTPS redirect, HSTS or secure-only cookies. honcho sets
	# PORT for each process; the local run keeps web on the loopback address the README gives.
	SECURE_HTTPS=false WEB_BIND="$${WEB_BIND:-127.0.0.1:8000}" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start

test: services
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py collectstatic --noinput -v0
	$(VENV)/bin/pytest --create-db -q

bench: migrate
	$(PY) bench/slots.py
	$(PY) bench/csv_import.py
	$(PY) bench/api_create_task.py
	$(PY) bench/dispatch.py
	$(PY) bench/tenants.py
	$(PY) bench/carrier.py
	$(PY) bench/controls.py

soak: migrate
	$(PY) bench/soak.py --json test-artifacts/soak.json
