# Two commands for a fresh machine: `make demo` and `make test`. Each sets up what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.bench-installed
NODE_INSTALLED := node_modules/.installed
DATA ?= ../shared/data/bytecode

.PHONY: demo corpus-report test bench clean

$(INSTALLED): pyproject.toml setup.py $(wildcard kamiyo/analyzers/bytecode/*.c)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(INSTALLED) $(NODE_INSTALLED)
	$(PY) demo/daemon_demo.py

corpus-report: $(INSTALLED)
	@mkdir -p out
	$(VENV)/bin/kamiyo families --input $(DATA) --format text --out out/families.txt \
		--export json=out/families.json --export graphml=out/families.graphml --export png=out/families.png
	@cat out/families.txt
	@echo "wrote out/families.txt, out/families.json, out/families.graphml and a picture: out/families.png"

test: $(INSTALLED) $(NODE_INSTALLED)
	$(PY) -m pytest

$(BENCH_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(BENCH_INSTALLED) $(NODE_INSTALLED)
	$(PY) bench/fingerprint.py
	$(PY) bench/catchup.py
	$(PY) bench/latency.py
	$(PY) bench/memory.py
	$(PY) bench/analyzers.py
	$(PY) bench/detection.py
	$(PY) bench/api.py
	$(PY) bench/api_queries.py

clean:
	rm -rf $(VENV) node_modules build *.egg-info out .cache
