# ccactors: `make demo` and `make test` are all a newcomer needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv demo test lint protos fabric-venv clean bench bench-report caliper

help:
	@echo "make demo    - create $(VENV), install, run the in-process demo"
	@echo "make test    - install everything the tests need, lint, run the whole suite"
	@echo "make protos  - regenerate the Python modules from protos/**/*.proto"
	@echo "make bench   - benchmark vs raw primitives (~9 min); writes bench/results/"
	@echo "make bench-report - render bench/results/README.md and bench.png again from results.json"
	@echo "make caliper - a Hyperledger Caliper round against the Gateway service"

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

# The full run prints the table and writes bench/results/ (README.md, results.json, bench.png).
# BENCH_ARGS adds options, e.g. make bench BENCH_ARGS="--pin --repeats 5".
bench: $(VENV)/.bench-installed
	$(VENV)/bin/ccactors bench --results bench/results $(BENCH_ARGS)

# The report and plot again from the saved figures (after a change to bench/report.py).
bench-report: $(VENV)/.bench-installed
	$(VENV)/bin/ccactors bench --render bench/results/results.json --results bench/results --quiet

# A real Caliper round (npm, unmodified) against a gateway started for it; results and
# Caliper's report.html in bench/results/caliper/. CALIPER_ARGS adds options, e.g.
# make caliper CALIPER_ARGS="--tx-number 10000 --tps 500".
caliper: $(STAMP)
	bash tools/ensure_node_interop.sh
	$(PY) -m tests.interop.caliper_run $(CALIPER_ARGS)

demo: $(STAMP)
	$(VENV)/bin/ccactors demo

# The official hyperledger-fabric-protos pins protobuf<6, so the wire check runs it in its own venv.
fabric-venv:
	$(PYTHON) tools/record_wire_golden.py --venv-only

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) fabric-venv lint
	bash tools/ensure_node_interop.sh
	bash tools/ensure_node_pouchdb.sh
	PYTHON=$(PYTHON) bash tools/ensure_python_interop.sh
	@# Docker engine + base image (installs/starts dockerd as root). In CI a failure fails the
	@# build; elsewhere the Docker tests then skip and say why.
	@PYTHON=$(PY) bash tools/ensure_docker.sh || { \
	  if [ "$$CI" = "true" ]; then echo "make test: CI=true and Docker is not usable (see above)"; exit 1; fi; \
	  echo "make test: Docker is not usable here (see above); the Docker tests will skip"; }
	$(PY) -m pytest -q

protos: $(STAMP)
	$(PY) -m protos.generate

clean:
	rm -rf $(VENV) .venv-fabric .pytest_cache .ruff_cache
