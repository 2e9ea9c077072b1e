# robot_rl: `make demo` installs everything and runs the simulated pick-cube session;
# `make test` runs the whole test suite. Both work from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TORCH_VERSION := 2.13.0
# MuJoCo software rendering (EGL/OSMesa), the Cortex-M toolchain for the C export,
# and the USB/HID libraries that pyrealsense2 and the SpaceMouse backend load.
APT_PACKAGES := libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libglib2.0-0 \
	gcc-arm-none-eabi libnewlib-arm-none-eabi libusb-1.0-0 libhidapi-hidraw0
DEMO_CONFIG ?= launch/sim_pick_cube.yaml
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test install system-deps bench clean

demo: install
	$(VENV)/bin/robot-rl train $(DEMO_CONFIG) $(DEMO_ARGS)

test: install
	@set +e; MUJOCO_GL=$${MUJOCO_GL:-egl} $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

install: $(VENV)/.installed

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: pyproject.toml | system-deps
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "robot_rl needs Python >= 3.10"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e '.[franky,devices,ros,dev]'
	touch $@

bench: install
	@for b in bench/*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) build *.egg-info
