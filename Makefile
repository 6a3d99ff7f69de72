# `make demo` and `make test` each build .venv/ when missing (pinned deps from
# requirements.lock) and then run. Nothing else is needed on a bare machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup browser test install-check demo bench bench-chunkers bench-semantic clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77"  # the editable install below builds with it
	$(PY) -m pip install -q -r requirements.lock
	@# setuptools warns on every editable install (about folders shadowing packages): shown only on failure
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . >$(VENV)/editable-install.log 2>&1 || { cat $(VENV)/editable-install.log; exit 1; }
	touch $(STAMP)

# The web page's browser tests drive Debian's chromium (Playwright downloads no browser).
browser:
	@command -v chromium >/dev/null || { $$(command -v sudo || true) apt-get update -qq && \
		$$(command -v sudo || true) apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) browser
	$(PY) -m pytest -q -p no:cacheprovider tests

# Fresh venvs prove `pip install noteloom` (chunking, no torch) and [rag]; CI runs it.
install-check:
	bash .ci/install_check

demo: $(STAMP)
	$(PY) -m service.demo

bench: bench-chunkers bench-semantic

bench-chunkers: $(STAMP)
	$(PY) bench/chunkers_bench.py

# after bench-chunkers, which builds the corpus it reads
bench-semantic: $(STAMP) bench-chunkers
	$(PY) bench/semantic_bench.py

clean:
	rm -rf $(VENV) .noteloom
