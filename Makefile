PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs bench bench-amqp lint clean broker broker-stop mutation

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

test: $(STAMP)
	$(BIN)/ruff check actors runtime tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Graphviz's dot draws the diagrams; Debian's package is installed if it is missing.
docs: $(STAMP)
	command -v dot >/dev/null || (apt-get update -q && apt-get install -y -q graphviz)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-amqp: $(STAMP)
	scripts/broker start
	$(BIN)/python -m benchmarks.amqp

broker:
	scripts/broker start

broker-stop:
	scripts/broker stop

clean:
	rm -rf $(VENV) build *.egg-info docs/_build

# Mutation scores of the engine's modules (mutation/*.toml), one module at a time; not part of make test or CI:
#   make mutation MODULE=runtime/_supervision.py    one module against its own tests
#   make mutation CHANGED=main                      every configured module changed since main (before it lands)
#   make mutation                                   list the configured modules
$(VENV)/.mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	touch $@

mutation: $(VENV)/.mutation
	$(BIN)/python scripts/mutation.py $(if $(CHANGED),--changed $(CHANGED),$(or $(MODULE),--list))
