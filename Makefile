# Two commands for a newcomer (see README): `make demo` and `make test`.
# Each creates .venv if missing and installs the pinned set from requirements.lock.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
DEXDATA := $(VENV)/bin/dexdata
DEMO_INPUT ?= ../shared/data/egocentric_video_nc
DEMO_OUT ?= dexwm-actions
export HF_HUB_OFFLINE ?= 1
export RAY_AUTH_MODE ?= disabled

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -c requirements.lock -e ".[test]"
	# projectaria-tools' own requirements pull numpy 2 and jupyter; its core readers need none of them.
	$(PY) -m pip install -q --no-deps projectaria-tools==2.3.0
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(DEXDATA) extract --source videos --input $(DEMO_INPUT) --out $(DEMO_OUT) --workers 2
	$(DEXDATA) validate $(DEMO_OUT)
	$(DEXDATA) info $(DEMO_OUT)

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)
