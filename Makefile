# provd developer targets. Thin on purpose: the README, CI (.ci/run) and developers all use
# these same targets. See docs/development.md.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Debian's /usr/bin/python3 (3.11) with Debian's packages is the runtime; a pyenv (or other)
# python3 earlier on PATH lacks them, so /usr/bin always comes first.
export PATH := /usr/bin:$(PATH)
# The package is not installed: run everything from the tree.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
# Packages in ~/.local must not shadow Debian's.
export PYTHONNOUSERSITE := 1

PYTHON := /usr/bin/python3
VENV := .venv
DEV_PINS := requirements-dev.txt
VENV_STAMP := $(VENV)/.provd-dev-tools.stamp

# Debian packages for running and testing provd. Later issues extend this list.
DEBIAN_PACKAGES := \
	python3 python3-venv python3-lxml python3-openssl python3-cryptography \
	python3-pyudev python3-systemd python3-pytest python3-hypothesis python3-pyftpdlib \
	python3-setuptools python3-h11 openssl strace

PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help deps venv test lint typecheck check demo bench proof proof-short format clean \
	distclean

help:
	@echo "make deps       install missing Debian packages (apt-get, only when missing)"
	@echo "make venv       .venv with the pinned dev tools of $(DEV_PINS)"
	@echo "make test       run the tests on $(PYTHON)   (PYTEST_ARGS='-k name -x' ...)"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make typecheck  mypy --strict (config in pyproject.toml)"
	@echo "make check      lint + typecheck + test"
	@echo "make demo       a phone session against the lab server over loopback TLS (DEMO_ARGS=...)"
	@echo "make bench      run bench/bench_*.py and print their figures"
	@echo "make proof      every proof suite at full scale; rewrites docs/proof.md (about 10 min)"
	@echo "make proof-short  proof suites 1-6 at CI scale; writes build/proof-short.md"
	@echo "make format     ruff format + ruff check --fix"
	@echo "make deb        build dist/provd_<version>_all.deb (docs/integrators.md)"
	@echo "make lintian    lintian --fail-on error,warning on the package"
	@echo "make security   systemd-analyze verify + security (provd.service at most 1.5)"
	@echo "make e2e        install the .deb in a Debian 12 tree and test it under systemd-nspawn"
	@echo "make clean      remove caches and build output (distclean also removes .venv and .cache)"

# dpkg-query answers "install ok installed" (or "hold ok installed") for an installed package;
# apt-get runs only when something is missing, so this is quick and offline otherwise.
# $(call apt_install_missing,TARGET,PACKAGES)
define apt_install_missing
missing=(); \
for pkg in $(2); do \
	status=$$(dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null || true); \
	case "$$status" in *" ok installed") ;; *) missing+=("$$pkg") ;; esac; \
done; \
if (( $${#missing[@]} )); then \
	echo "$(1): installing $${missing[*]}"; \
	sudo=(); if [[ $$(id -u) -ne 0 ]]; then sudo=(sudo); fi; \
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	"$${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "$${missing[@]}"; \
fi
endef

deps:
	@$(call apt_install_missing,deps,$(DEBIAN_PACKAGES))

venv: $(VENV_STAMP)

# Rebuilt only when the pins change. A .venv that is not over /usr/bin's python with system
# site-packages (say, made by a pyenv python) is recreated.
$(VENV_STAMP): $(DEV_PINS) | deps
	@if ! grep -qx 'home = /usr/bin' $(VENV)/pyvenv.cfg 2>/dev/null \
		|| ! grep -qx 'include-system-site-packages = true' $(VENV)/pyvenv.cfg; then \
		echo "venv: creating $(VENV) over $(PYTHON)"; \
		$(PYTHON) -m venv --clear --system-site-packages $(VENV); \
	fi
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -r $(DEV_PINS)
	@touch $@

test: deps
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

check: lint typecheck test

demo: deps
	$(PYTHON) -m provd.service.demo $(DEMO_ARGS)

bench: deps
	@shopt -s nullglob; benches=(bench/bench_*.py); \
	if (( ! $${#benches[@]} )); then echo "bench: no bench/bench_*.py yet"; exit 0; fi; \
	for b in "$${benches[@]}"; do echo "== $$b"; $(PYTHON) "$$b"; done

# The proof suites (bench/proof, issue 8) run on the venv's python: Debian's python3 with its
# packages, plus the fuzzer of $(DEV_PINS). Suite 6 starts a private systemd-journald.
PROOF_PACKAGES := systemd util-linux openssl
PROOF_ARGS ?=

proof: venv
	@$(call apt_install_missing,proof,$(PROOF_PACKAGES))
	$(VENV)/bin/python -m bench.proof --scale full --out docs/proof.md $(PROOF_ARGS)

proof-short: venv
	@$(call apt_install_missing,proof-short,$(PROOF_PACKAGES))
	$(VENV)/bin/python -m bench.proof --scale short --out build/proof-short.md $(PROOF_ARGS)

# Format first: then whatever `ruff check --fix` cannot fix is the last thing printed.
format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache/e2e

# ==== Debian package, unit hardening, end-to-end run under systemd (issue 7) ====================
# make deb        build dist/provd_<version>_all.deb (+ .changes, .buildinfo) with dpkg-buildpackage,
#                 from a copy of the tree in build/deb/ (the repository stays clean)
# make lintian    lintian --fail-on error,warning on the built package
# make security   systemd-analyze verify + security (exposure of provd.service at most 1.5)
# make e2e-image  the cached Debian tree for make e2e (.cache/e2e/image, rebuilt when stale)
# make e2e        install the .deb into that tree, boot it under systemd-nspawn, run the checks
#                 (E2E_BREAK=start|server|watchdog|mdwe breaks one thing on purpose: must fail)
# make deb-deps   install the Debian packages these targets need (only when missing)
# See docs/integrators.md.

# dpkg-buildpackage and debhelper/dh-python/pybuild (with the Build-Depends of debian/control),
# lintian; systemd for systemd-analyze.
DEB_PACKAGES := \
	build-essential dpkg-dev fakeroot debhelper dh-python pybuild-plugin-pyproject python3-all \
	python3-build python3-installer python3-setuptools lintian systemd
E2E_PACKAGES := debootstrap systemd-container debian-archive-keyring
DEB_VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEB_BUILD_DIR := build/deb
DEB_OUT := dist
DEB_FILE := $(DEB_OUT)/provd_$(DEB_VERSION)_all.deb
# Everything that goes into the package: the files git knows (tracked or not ignored), so a
# change to any of them rebuilds the .deb; outside a git checkout, `make deb` always rebuilds.
DEB_SOURCES := $(wildcard $(shell git ls-files --cached --others --exclude-standard 2>/dev/null))
SECURITY_MAX := 1.5
E2E_TIMEOUT ?= 15m

.PHONY: deb-deps deb lintian security e2e-image e2e

deb-deps:
	@$(call apt_install_missing,deb-deps,$(DEB_PACKAGES) $(E2E_PACKAGES))

deb: $(DEB_FILE)

$(DEB_FILE): $(DEB_SOURCES) | deps deb-deps
	e2e/build-deb $(DEB_BUILD_DIR) $(DEB_OUT)

lintian: deb
	lintian --fail-on error,warning --display-info $(DEB_OUT)/provd_$(DEB_VERSION)_*.changes

security: deb-deps
	e2e/unit-check --max-exposure $(SECURITY_MAX) systemd

e2e-image: $(DEB_FILE) | deb-deps
	e2e/image $(DEB_FILE)

e2e: e2e-image
	timeout --kill-after=30s $(E2E_TIMEOUT) e2e/run $(DEB_FILE)
# ==== end of issue 7 block =======================================================================
