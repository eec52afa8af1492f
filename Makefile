# The README's commands. `make demo` and `make test` each set up .venv first if needed.
VENV ?= .venv
BIN := $(VENV)/bin
# python3.12, or through pyenv where 3.12 is installed but not the global version.
PYTHON ?= $(shell for v in "" $$(pyenv versions --bare 2>/dev/null | grep '^3\.12'); do \
	if PYENV_VERSION=$$v python3.12 -c '' 2>/dev/null; then echo "env PYENV_VERSION=$$v python3.12"; break; fi; done)
FASHION_MNIST_DEB := /usr/share/datasets/fashion-mnist

.PHONY: demo test lint bench data venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: python3.12 not found; install Python 3.12 or pass PYTHON=/path/to/python3.12"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# Fashion-MNIST: the Debian package where apt-get works, else a download into the data cache.
data: venv
	@if [ -d "$(FASHION_MNIST_DEB)" ] || [ -n "$$FASHION_MNIST_DIR" ]; then echo "Fashion-MNIST present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	else $(BIN)/python -m lib.data.prepare fashion_mnist; fi

demo: data
	$(BIN)/python -m lib.repro verify batchnorm_only

test: venv
	$(BIN)/python -m pytest -n 2 --durations=15

lint: venv
	$(BIN)/ruff check lib configs experiments tests launch

bench: venv
	$(BIN)/python -m lib.bench
