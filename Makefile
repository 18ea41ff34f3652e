# The README's commands. `train` and `test` install the locked environment into .venv (exact
# versions and hashes from requirements/*.txt) and run there; Debian's Fashion-MNIST package
# needs root.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTHON ?= python3
VENV ?= .venv
VENV_PY := $(VENV)/bin/python
# The newest versions pip resolves today, for `make test-latest` (never the lock's venv).
LATEST_VENV ?= .venv-latest
PIP_TOOLS := pip-tools==7.6.2
# pip-compile writes neither index URLs nor find-links: they belong to the machine's pip config.
COMPILE := pip-compile -q --generate-hashes --allow-unsafe --strip-extras --all-build-deps \
    --no-emit-index-url --no-emit-find-links

.PHONY: train test test-latest lock upgrade-lock

# Trains the quickstart DCGAN on Fashion-MNIST on the CPU.
train: $(FASHION_MNIST) $(VENV)/.installed-default
	$(VENV_PY) -m experiments.train --config experiments/configs/dcgan_fashion_mnist.py:cpu \
	    --workdir runs/dcgan_fashion_mnist_cpu

# Runs the default (fast, CPU) test suite in two processes, on the locked test environment.
test: $(FASHION_MNIST) $(VENV)/.installed-test
	GAN_JAX_REQUIRE_FASHION_MNIST=1 GAN_JAX_LOCKED_ENV=1 $(VENV_PY) -m pytest -q -n 2

# The same suite on the newest versions pip resolves today: run it before `make upgrade-lock`.
test-latest: $(FASHION_MNIST)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade -e '.[test]'
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	GAN_JAX_REQUIRE_FASHION_MNIST=1 $(LATEST_VENV)/bin/python -m pytest -q -n 2

# A stamp per lock: the venv is reinstalled when its lock file changes. --no-deps because the
# lock already names every transitive dependency; the project itself goes in without build
# isolation, so its build backend (setuptools) is the locked one too.
$(VENV)/.installed-%: requirements/%.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install -q --no-deps --require-hashes -r $<
	$(VENV_PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Regenerates the locks from pyproject.toml, keeping the pinned versions that still fit
# (`upgrade-lock`: the newest versions that fit). The default lock is constrained by the test
# lock, so the two agree on every package they share.
lock upgrade-lock:
	$(PYTHON) -m venv .cache/pip-tools
	.cache/pip-tools/bin/python -m pip install -q $(PIP_TOOLS)
	. .cache/pip-tools/bin/activate && \
	    $(COMPILE) $(if $(filter upgrade-lock,$@),--upgrade) --extra test \
	        -o requirements/test.txt pyproject.toml && \
	    $(COMPILE) -c requirements/test.txt -o requirements/default.txt pyproject.toml
	# The test extra names gan_jax itself; the project is installed editable, not from the lock.
	sed -i -e '/^gan-jax @ /,+1d' -e '/^# WARNING: pip install will require/d' \
	    -e '/^# Consider using a hashable URL/d' requirements/test.txt requirements/default.txt

$(FASHION_MNIST):
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
