# The two set-up commands in the README:
#   make demo   install everything and chat with the shipped default assistant
#   make test   install everything (chromium for the browser test included) and run the tests
PY ?= python3
PIP ?= $(PY) -m pip

.PHONY: install system-deps demo test bench

install:
	$(PIP) install -e '.[dev]'

# Debian's Chromium for the web room's browser test (Playwright never downloads a browser here).
system-deps:
	@test -x /usr/lib/chromium/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)

demo: install
	chimein chat

test: install system-deps
	$(PY) -m pytest

bench: install
	$(PY) bench/decision_latency.py
	$(PY) bench/train_speed.py
