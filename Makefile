# ccactors: `make demo` and `make test` are all a newcomer needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv demo test lint protos fabric-venv clean

help:
	@echo "make demo    - create $(VENV), install, run the in-process demo"
	@echo "make test    - install everything the tests need, lint, run the whole suite"
	@echo "make protos  - regenerate the Python modules from protos/**/*.proto"

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

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
