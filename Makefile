# The two README commands. Both install what they need (Debian's Fashion-MNIST package needs root).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTHON ?= python3

.PHONY: train test

# Trains the quickstart DCGAN on Fashion-MNIST on the CPU (about 6 minutes on 2 cores).
train: $(FASHION_MNIST)
	$(PYTHON) -m pip install -q -e .
	$(PYTHON) -m experiments.train --config experiments/configs/dcgan_fashion_mnist.py:cpu \
	    --workdir runs/dcgan_fashion_mnist_cpu

# Installs the test dependencies and runs the default (fast, CPU) test suite.
test: $(FASHION_MNIST)
	$(PYTHON) -m pip install -q -e '.[test]'
	$(PYTHON) -m pytest -q -n 2

$(FASHION_MNIST):
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
