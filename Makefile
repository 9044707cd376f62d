# Painkiller: `make up` brings the whole stack up natively, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYPROJECTS := common/pyproject.toml testing/pyproject.toml patient_service/pyproject.toml measurement_service/pyproject.toml

.PHONY: servers test-servers venv up down status observe token test test-fast audit test-containers images lint bench bench-replicas clean backup restore reconcile replay

# One venv for both services and the tests; constraints.txt pins every package, transitive ones too.
$(STAMP): constraints.txt requirements-dev.txt $(PYPROJECTS)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required as $(PYTHON)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "Cannot create a venv: install python3-venv (apt-get install -y python3-venv)"; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt \
		--config-settings editable_mode=compat \
		-e ./common -e ./testing -e './patient_service[dev]' -e './measurement_service[dev]'
	@touch $@

venv: $(STAMP)

# PostgreSQL, RabbitMQ and NGINX installed and running (as root on Debian/Ubuntu it installs them),
# and a PostgreSQL admin role with a password: scripts/bootstrap.py, standard library only.
servers:
	@$(PYTHON) scripts/bootstrap.py --for up

test-servers:
	@$(PYTHON) scripts/bootstrap.py --for tests

# The tests set up their databases with the admin role bootstrap.py made (or POSTGRES_ADMIN_URL).
WITH_ADMIN := POSTGRES_ADMIN_URL="$$($(PYTHON) scripts/bootstrap.py --admin-url)"

up: servers venv  ## servers, databases, migrations, both services and NGINX on :8080; REPLICAS=2 runs two of each process
	@$(WITH_ADMIN) $(PY) scripts/backups.py configure
	$(PY) scripts/stack.py up

# Backups and restores with pgBackRest into BACKUP_DIR (/var/backups/painkiller unless set), and
# the two services brought back into agreement: doc/operations.md is the runbook.
RUN_DIR ?= .run
backup: venv  ## a base backup of the PostgreSQL cluster now
	@$(WITH_ADMIN) $(PY) scripts/backups.py backup

restore: venv  ## TARGET=<RFC 3339 time>|latest [SERVICE=patient|measurement]: point-in-time restore, processes paused
	@test -n "$(TARGET)" || { echo "usage: make restore TARGET=<RFC 3339 time>|latest [SERVICE=patient|measurement]"; exit 2; }
	@$(WITH_ADMIN) $(PY) scripts/backups.py restore --target "$(TARGET)" $(if $(SERVICE),--service "$(SERVICE)") --run-dir "$(RUN_DIR)"

reconcile: venv  ## each service's copies of the other's facts repaired from their source; prints what changed
	@$(PY) scripts/reconcile.py

replay: venv  ## SERVICE=patient|measurement SINCE=<RFC 3339> [UNTIL=...]: its retained outbox events sent again
	@$(PY) scripts/reconcile.py replay --service "$(SERVICE)" --since "$(SINCE)" $(if $(UNTIL),--until "$(UNTIL)")

# A dev token signed by the key `make up` made; SCOPE, PATIENT, SUB and TTL narrow it.
token: venv
	@$(PY) -m painkiller_testing.devauth .run/auth --scope "$(SCOPE)" --patient "$(PATIENT)" --sub "$(SUB)" --ttl "$(TTL)"

observe: venv  ## a real Prometheus on :9090 scraping what `make up` started, with observability/rules.yml
	$(PY) scripts/stack.py observe

status: venv  ## every process of `make up`: state, pid, uptime, restarts (exit 1 unless all run)
	@$(PY) scripts/stack.py status

down:
	@if [ -x $(PY) ]; then $(PY) scripts/stack.py down; fi

test: test-servers venv  ## every test: unit, end to end through NGINX, container files
	@$(WITH_ADMIN) $(PY) -m pytest

test-fast: test-servers venv  ## the edit-test loop (under 2 minutes once mypy's cache is warm): lint, each service's own tests, tokens, static checks and types; no stack
	@$(WITH_ADMIN) $(PY) -m pytest -q patient_service/tests measurement_service/tests tests/auth tests/static

test-containers: test-servers venv  ## builds the images, starts the stack from them, runs pytest inside them (also part of `make test`)
	@$(WITH_ADMIN) $(PY) -m pytest tests/containers

images: venv  ## every image (both services, their test targets, NGINX), with docker or podman; offline if need be
	$(PY) scripts/images.py

lint: venv  ## also part of `make test`
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint nginx/Dockerfile containers/*.Dockerfile

# pip-audit in a venv of its own (its packages stay out of the services'), pinned in
# requirements-audit.txt. --strict: a package that could not be checked (the vulnerability
# database out of reach) fails the audit, naming it, instead of passing in silence.
AUDIT_VENV := .venv-audit
audit:  ## known vulnerabilities of every pinned package (constraints.txt); fails if any cannot be checked
	@test -x $(AUDIT_VENV)/bin/pip-audit || { $(PYTHON) -m venv $(AUDIT_VENV) && \
		$(AUDIT_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-audit.txt; }
	$(AUDIT_VENV)/bin/pip-audit --requirement constraints.txt --no-deps --strict --progress-spinner off

clean: down
	rm -rf $(VENV) $(AUDIT_VENV) .run

bench: test-servers venv  ## the benchmark: wrk through NGINX, ratios to a baseline app, 10k vs 5M rows
	$(PY) bench/run.py

bench-replicas: test-servers venv  ## the same load on one and on two of every process (doc/scaling.md)
	$(PY) bench/replicas.py
