# Two commands set up everything on a fresh machine:
#   make demo   venv + install, then benchmark two small models on this machine (SQLite store, CSV reports)
#   make test   venv + everything the tests need (system packages included), then the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install tflite-runtime-venv system-packages clean

demo: $(STAMP)
	$(BIN)/farm demo

# The suite runs on TEST_WORKERS processes (pytest-xdist), one per CPU: it is CPU-bound, so more would only queue. The
# tests that time this machine twice and compare the runs (marked `alone`) run after them, with nothing else running.
# A module's tests stay on one worker (loadscope), so its module fixtures (a sweep, converted models) are built once.
TEST_WORKERS ?= auto

test: $(STAMP) tflite-runtime-venv system-packages
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope -m "not alone"
	$(BIN)/python -m pytest -q -m alone

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e '.[convert,ssh,adb,dashboard,postgres,test]'
	@# qat and pruned variants: tf-keras and tensorflow-model-optimization, without the dependencies they declare (the
	@# full tensorflow wheel beside tensorflow-cpu, absl-py < 2), which would break TensorFlow (see pyproject.toml).
	$(BIN)/python -m pip install --quiet --no-compile --no-deps \
		$$($(BIN)/python -c 'from farm.optimize import TFMOT_PACKAGES; print(*TFMOT_PACKAGES)')
	@# Byte-compiled once, here, on every CPU (pip would do it on one, and not this editable checkout at all): every
	@# process started later loads the compiled code (with PYTHONDONTWRITEBYTECODE set, nothing would keep a later compile).
	@# The packages' own test suites are never imported: not compiled.
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/' \
		$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') farm agents dashboard > /dev/null
	touch $@

# The other runtime a board may have: tflite-runtime 2.14 with numpy < 2, as Raspberry Pi OS and Coral images run it
# (a board of the tests' SSH fleet runs the agent with it; tests/conftest.py: TFLITE_RUNTIME_PYTHON). Built once (pip's
# cache makes a rebuild quick), again only when it no longer imports. tflite-runtime 2.14 has wheels for CPython 3.8 to
# 3.11: TFLITE_RUNTIME_BASE names such a Python where python3 is newer.
TFLITE_RUNTIME_VENV := .venv-tflite-runtime
TFLITE_RUNTIME_BASE ?= $(PYTHON)

tflite-runtime-venv:
	@$(TFLITE_RUNTIME_VENV)/bin/python -c 'import numpy, tflite_runtime.interpreter' 2>/dev/null || { \
		echo "building $(TFLITE_RUNTIME_VENV): tflite-runtime 2.14.0 with numpy < 2"; \
		rm -rf $(TFLITE_RUNTIME_VENV) && $(TFLITE_RUNTIME_BASE) -m venv $(TFLITE_RUNTIME_VENV) && \
		$(TFLITE_RUNTIME_VENV)/bin/python -m pip install --quiet 'numpy<2' tflite-runtime==2.14.0; }

# What the tests need from the system (real servers and tools: sshd, adb, Chromium, a PostgreSQL server for private
# clusters); installed only when missing.
SYSTEM_PACKAGES := openssh-server openssh-client adb chromium postgresql
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf $(VENV) $(TFLITE_RUNTIME_VENV) demo reports farm.db farm.db-wal farm.db-shm farm.db.leases build dist
