# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

# axe-core, the accessibility checker the browser tests inject (tests/test_page_a11y.py):
# fetched from the npm registry by `make test`, checked against its pinned integrity, and
# kept in build/ (git-ignored): the page never ships it.
AXE_VERSION := 4.10.3
AXE_INTEGRITY := sha512-Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce856dYtJYLkuIoYZvGfTs/PbZhideTcEg==
AXE := build/axe-core-$(AXE_VERSION)/axe.min.js
AXE_PACK := build/axe-pack/axe-core-$(AXE_VERSION).tgz

.PHONY: run page test browser axe bench bench-profile bench-stop bench-stop-size format clean

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# `make run`: the dev stage's AUTH=optional (guests, and sign-in for the demo users, whose
# passwords the banner shows); `make run AUTH=cognito` requires sign-in, `AUTH=none` refuses it.
AUTH ?= optional
DEMO_USERS ?= alice:Alice-password-1 bob:Bob-password-1 carol:Carol-password-1
# alice is in the Cognito group `admins`: she moderates every room (docs/signin.md).
DEMO_ADMINS ?= alice
RUN_FLAGS = --env AUTH=$(AUTH) $(foreach user,$(DEMO_USERS),--cognito-user $(user)) \
	$(foreach user,$(DEMO_ADMINS),--cognito-group admins:$(user))

run: $(INSTALLED)
	$(PY) -m localgateway $(RUN_FLAGS)

# `make page`: only the page (static/), for a deployed stage (`make deploy` prints its link):
# its ES modules do not load from a file://.
page:
	$(PYTHON) -m http.server 8000 --bind 127.0.0.1 --directory static

test: $(INSTALLED) browser $(AXE)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

# The page's tests drive Debian's Chromium (never a downloaded browser): install it
# when we are root (CI is), otherwise stop and say how.
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install -y chromium', then make test" >&2; \
	    exit 1; \
	  fi; \
	fi


$(AXE):
	rm -rf build/axe-pack && mkdir -p build/axe-pack $(@D)
	cd build/axe-pack && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null
	@$(PYTHON) -c 'import base64, hashlib, sys; digest = hashlib.sha512(open(sys.argv[1], "rb").read()).digest(); sys.exit("sha512-" + base64.b64encode(digest).decode() != sys.argv[2] and "axe-core: the tarball does not match its pinned integrity")' $(AXE_PACK) '$(AXE_INTEGRITY)'
	tar xzf $(AXE_PACK) -C $(@D) --strip-components=1 package/axe.min.js package/LICENSE
	rm -rf build/axe-pack

axe: $(AXE)

# The broadcast benchmark (docs/benchmarks.md): `make bench`, `make bench BENCH_ARGS=--large`,
# and the CPU profile of a 1,000-member broadcast: `make bench-profile`.
BENCH_ARGS ?=

bench: $(INSTALLED)
	$(PY) -m bench $(BENCH_ARGS)

bench-profile: $(INSTALLED)
	$(PY) -m bench.profile --write

# Ctrl-C and kill -9 with 300 chat clients open, then a restart (docs/local-gateway.md).
bench-stop: $(INSTALLED)
	$(PY) -m bench.stop

# Stop and start times by table size, 13,000 and 100,000 items (docs/local-gateway.md).
bench-stop-size: $(INSTALLED)
	$(PY) -m bench.stop_size --write

format: $(INSTALLED)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# AWS (docs/deploy.md): `make deploy STAGE=dev`, `make destroy STAGE=dev [DELETE_TABLE=yes]`,
# and `make package STAGE=prod` (a CloudFormation/SAM template, built without AWS).
STAGE ?= dev
DELETE_TABLE ?= no

.PHONY: deploy destroy package

deploy: $(INSTALLED)
	$(PY) -m deploytools deploy --stage $(STAGE)

destroy: $(INSTALLED)
	$(PY) -m deploytools destroy --stage $(STAGE) $(if $(filter yes,$(DELETE_TABLE)),--delete-table)

package: $(INSTALLED)
	$(PY) -m deploytools package --stage $(STAGE) --out build/package-$(STAGE)
