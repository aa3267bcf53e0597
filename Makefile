# newsqa — everyday commands. `make run` and `make test` are the two set-up commands of the README.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench bench-scale install clean docs

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, as the CPU-only build: 2.13.0 is the release this machine keeps locally, and
	# without it pip would resolve sentence-transformers' torch requirement to a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

## Open the REPL over the bundled sample corpus (no token, no server).
run: $(STAMP)
	$(VENV)/bin/newsqa --data-dir data-sample repl --sample

## Run the test suite.
test: $(STAMP)
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check retrieval bot tests bench
	$(VENV)/bin/ruff format --check retrieval bot tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/bench_encoders.py
	$(PY) bench/bench_telegram.py
	$(PY) bench/bench_serve_during_ingest.py
	$(MAKE) bench-scale

## Index scaling (docs/performance.md): replicated data directories under SCALE_DIR, made once
## (1M passages: ~5 GB and ~12 min to make); `make bench-scale SCALE_SIZES="100000 1000000"`.
SCALE_DIR ?= /tmp/newsqa-scale
SCALE_SIZES ?= 100000
bench-scale: $(STAMP)
	for n in $(SCALE_SIZES); do \
	  test -d $(SCALE_DIR)/d$$n || $(PY) bench/bench_scale.py make --size $$n --out $(SCALE_DIR)/d$$n || exit 1; \
	  $(PY) bench/bench_scale.py run $(SCALE_DIR)/d$$n --baseline --json $(SCALE_DIR)/r$$n.json || exit 1; \
	done

## PostgreSQL against local (docs/performance.md): the 100k material of bench-scale (made once
## if missing) copied into a throwaway server; answer latency and ingestion, same run.
PG_BENCH_DATA ?= /tmp/scale/s100k
bench-pg: $(STAMP)
	test -d $(PG_BENCH_DATA) || $(PY) bench/bench_scale.py make --size 100000 --out $(PG_BENCH_DATA)
	$(PY) bench/bench_pg.py $(PG_BENCH_DATA) --json $(PG_BENCH_DATA)-pg.json

## Write the real outputs of the README's examples (docs/readme_examples.py; a test checks them).
docs: $(STAMP)
	$(PY) docs/readme_examples.py --write README.md

clean:
	rm -rf data-sample .pytest_cache .mypy_cache .ruff_cache
