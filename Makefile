# framewire: `make test` sets everything up on a fresh machine and runs the tests.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install system-deps test test-unit soak bench bench-check run up down logs lint format clean docs-images
.PHONY: node-producer node-producer-deps java-producer java-producer-build

help:
	@echo "make run     redis + sender + both receivers on this machine (Ctrl-C stops)"
	@echo "make test    install what the tests need, then run them all (tests/unit and tests/system; CI)"
	@echo "make test-unit  the in-process tests (tests/unit): no process, no server, under a minute"
	@echo "make soak    the soak test for SOAK_SECONDS (600): memory and latency over time"
	@echo "make bench   framewire bench: HTTP against Redis (BENCH_ARGS=--quick: about a minute)"
	@echo "make bench-check  hold bench-results/results.json against docs/bench/targets.json"
	@echo "make up      docker compose up --build (the product); make down, make logs"
	@echo "make docs-images  docs/comparison.png (Chromium, a running stack) and docs/bench/chart.png"
	@echo "make lint    ruff (check and format), hadolint, compose schema check, docker compose config, mkdocs build --strict"
	@echo "make node-producer ARGS='...'  examples/node-producer: JPEG files to HTTP and Redis (Node.js)"
	@echo "make java-producer ARGS='...'  examples/java-producer: JPEG files to HTTP (JDK only)"

$(STAMP): requirements-dev.lock pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

install: $(STAMP)

system-deps:
	@scripts/system-deps.sh

# Everything, the soak included: what CI runs.
test: install system-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# The inner loop: tests/unit only (in process, no subprocess, no server), the soak skipped.
test-unit: install
	$(BIN)/pytest tests/unit -m "not soak" $(PYTEST_ARGS)

# A longer soak than the 60 s one in `make test`: memory and latency over time.
SOAK_SECONDS ?= 600
soak: install system-deps
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest -s tests/system/test_soak.py

# HTTP against Redis on this machine: BENCH_ARGS=--quick for about a minute.
BENCH_OUT ?= bench-results
bench: install system-deps
	$(BIN)/framewire bench --out $(BENCH_OUT) $(BENCH_ARGS)

# Pass/fail lives here, not in the bench's report: results against the checked-in targets
# (BENCH_CAPACITY: a capacity run's results.json, `framewire bench --cameras max`, held too;
# BENCH_REPLICAS: a replicas run's, `framewire bench --replicas 1,2,3 --replicas-pinned`).
BENCH_TARGETS ?= docs/bench/targets.json
BENCH_CAPACITY ?=
BENCH_REPLICAS ?=
bench-check: install
	$(BIN)/python scripts/bench_check.py $(BENCH_OUT)/results.json --targets $(BENCH_TARGETS) \
		$(if $(BENCH_CAPACITY),--capacity $(BENCH_CAPACITY)) \
		$(if $(BENCH_REPLICAS),--replicas $(BENCH_REPLICAS))

# The docs' pictures from the real thing: the page of a running stack in Chromium, and the
# bench chart from the checked-in docs/bench/results.json.
docs-images: install
	$(BIN)/python scripts/docs_images.py

run: install
	$(BIN)/python scripts/run_local.py

up:
	docker compose up --build

down:
	docker compose down

logs:
	docker compose logs --follow --tail=100

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --failure-threshold warning docker/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	@if docker compose version >/dev/null 2>&1; then docker compose config -q && echo "docker compose config: ok"; \
	else echo "docker compose is not installed: skipped 'docker compose config -q'"; fi
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Producers in other languages (examples/): each builds and runs from one command, e.g.
#   make node-producer ARGS="--camera door --fps 10 --count 100 frames/"
NODE_PRODUCER := examples/node-producer
JAVA_PRODUCER := examples/java-producer

# npm ci from the lock file, again only when package.json or the lock file changes.
$(NODE_PRODUCER)/node_modules/.framewire-installed: $(NODE_PRODUCER)/package.json $(NODE_PRODUCER)/package-lock.json
	cd $(NODE_PRODUCER) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

node-producer-deps: $(NODE_PRODUCER)/node_modules/.framewire-installed

node-producer: node-producer-deps
	node $(NODE_PRODUCER)/producer.mjs $(ARGS)

$(JAVA_PRODUCER)/build/FramewireProducer.class: $(wildcard $(JAVA_PRODUCER)/src/*.java)
	javac -Xlint:all -Werror -d $(JAVA_PRODUCER)/build $^

java-producer-build: $(JAVA_PRODUCER)/build/FramewireProducer.class

java-producer: java-producer-build
	java -cp $(JAVA_PRODUCER)/build FramewireProducer $(ARGS)

clean:
	rm -rf $(VENV) .site .pytest_cache .ruff_cache .hypothesis $(NODE_PRODUCER)/node_modules $(JAVA_PRODUCER)/build
