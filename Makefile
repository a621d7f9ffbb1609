# k8s-platform — every command the README and CI use.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
STAMP := $(VENV)/.installed
STACKS := $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml))
ACTIONLINT_VERSION := v1.7.12
# K8SP_ENGINE_SOURCES: the directory with the upstream source tarballs the engine build and the
# conformance and e2e tiers need (their names and sha256: README, "The offline engine"). Set it;
# unset, it falls back to where the project's CI runner keeps them, when that exists.
K8SP_ENGINE_SOURCES ?= $(if $(wildcard $(CURDIR)/../shared/vendor),$(abspath $(CURDIR)/../shared/vendor),)
export K8SP_ENGINE_SOURCES
# State backend: Pulumi.yaml's `backend.url` (file://./.pulumi-state), which bare `pulumi`
# reads too; PULUMI_BACKEND_URL overrides it for both.
export PULUMI_SKIP_UPDATE_CHECK := true
# The committed example stacks (dev, staging, prod) are encrypted with this documented,
# non-secret passphrase: they hold placeholders only. Any other stack needs your own
# PULUMI_CONFIG_PASSPHRASE(_FILE).
EXAMPLE_STACKS := dev staging prod
ifeq ($(origin PULUMI_CONFIG_PASSPHRASE)$(origin PULUMI_CONFIG_PASSPHRASE_FILE),undefinedundefined)
ifneq ($(filter $(STACK),$(EXAMPLE_STACKS)),)
export PULUMI_CONFIG_PASSPHRASE := k8s-platform-example
endif
endif
# A Pulumi CLI: yours (>= the pulumi pin; plugins installed at the pinned versions), else
# the offline engine when built (scripts/pulumi_env.sh). The project venv first on PATH.
PULUMI_ENV = penv="$$(scripts/pulumi_env.sh)" && eval "$$penv"


.PHONY: new-stack stack setup system-deps mysql-image test test-fast unit conformance e2e lint typecheck validate inventory render mirror-list \
        plan local-cluster engine engine-deps engine-check preview up destroy bench bench-e2e bench-backend clean help preview-all drift promote rollback recover

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "k8s-platform needs Python 3.11 or newer; $(PY) is $$($(PY) --version 2>&1 | head -n1). Use: make PY=python3.11 …"; exit 1; }
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" != "$$($(PY) -c 'import sys; print(sys.version_info[:2])')" ]; then \
	  echo "recreating $(VENV): it was made with another Python than $(PY)"; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

system-deps: ## Debian packages and tools the tests use (shellcheck; openssh-server, git, curl, systemd-analyze, helm; the e2e real node's runtime and image tools; systemd-nspawn and skopeo for the real machines; iproute2 for the MySQL pods)
	@missing=""; for pair in shellcheck:shellcheck sshd:openssh-server ssh-keygen:openssh-client git:git npm:npm unzip:unzip \
	    containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins conntrack:conntrack \
	    iptables:iptables mmdebstrap:mmdebstrap umoci:umoci curl:curl systemd-analyze:systemd \
	    systemd-nspawn:systemd-container skopeo:skopeo ip:iproute2 nsenter:util-linux; do \
	    cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	    command -v $$cmd >/dev/null || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; done; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; fi; fi
	scripts/tools.sh >/dev/null

$(BIN)/actionlint: | $(STAMP)
	@if command -v go >/dev/null; then GOBIN=$(CURDIR)/$(BIN) GOTOOLCHAIN=local go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION); \
	  else echo "go not found: the workflow tests run without actionlint"; fi

setup: $(STAMP) system-deps $(BIN)/actionlint ## create .venv with runtime + test dependencies

# A real MySQL server for tests/conformance/test_mysql_server.py: Debian sid's mysql-server-core
# laid out like the official image (tests/support/mysql_rootfs.py), built once into
# ~/.cache/k8s-platform/mysql-rootfs/ from the Debian mirror and the vendored entrypoint.
mysql-image: system-deps | $(STAMP) ## build (or reuse) the MySQL server rootfs the conformance tests run (needs root)
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python -m tests.support.mysql_rootfs >/dev/null; \
	  else echo "not root: tests/conformance/test_mysql_server.py will be skipped (its MySQL pods need root)"; fi

test: setup mysql-image ## lint, unit + conformance, then e2e when the engine is built
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest tests/unit tests/conformance
	@if scripts/engine.sh --check >/dev/null 2>&1; then $(MAKE) --no-print-directory e2e; \
	  else echo "e2e tier skipped: the Pulumi engine is not built (run 'make engine', then 'make test')"; fi

test-fast: setup mysql-image ## unit + conformance only
	$(BIN)/python -m pytest tests/unit tests/conformance

unit: setup
	$(BIN)/python -m pytest tests/unit

conformance: setup mysql-image
	$(BIN)/python -m pytest tests/conformance

e2e: setup ## end to end with the real Pulumi engine (needs `make engine`)
	$(BIN)/python -m pytest -p no:cacheprovider tests/e2e -m e2e

lint: setup ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

validate: setup ## validate every stack file (Pulumi.<stack>.yaml)
	$(BIN)/python -m stacks validate $(STACKS)

inventory: setup
	$(BIN)/python -m stacks inventory $(STACK)

render: setup ## write STACK's manifests to render/STACK
	$(BIN)/python -m stacks render $(STACK) --out render/$(STACK)

# make plan works offline: a chart repository it cannot contact is a warning (--allow-unreachable);
# a chart it fetched that does not render fails it. STRICT_CHARTS=1 (a PR check with network)
# fails on an unreachable repository too.
# mirror-list: kubespray's downloads are listed from a checkout of the pinned release and its
# ansible when given (KUBESPRAY_TREE=dir ANSIBLE_PLAYBOOK=path); without them the list says it
# is incomplete
MIRROR_LIST_ARGS = $(if $(KUBESPRAY_TREE),--kubespray $(KUBESPRAY_TREE)) $(if $(ANSIBLE_PLAYBOOK),--ansible-playbook $(ANSIBLE_PLAYBOOK))

mirror-list: setup ## print every file, image and chart STACK needs, upstream beside where its mirrors fetch it [JSON=1 KUBESPRAY_TREE=dir ANSIBLE_PLAYBOOK=path]
	$(BIN)/python -m stacks mirror-list $(STACK) $(MIRROR_LIST_ARGS) $(if $(JSON),--json)

plan: setup ## validate STACK, write its kubespray inventory, its objects and its Helm charts (helm template) and what it needs mirrored to build/STACK [STRICT_CHARTS=1]
	$(BIN)/python -m stacks validate $(STACK)
	@rm -rf build/$(STACK) && mkdir -p build/$(STACK)
	$(BIN)/python -m stacks inventory $(STACK) --out build/$(STACK)/inventory
	$(BIN)/python -m stacks render $(STACK) --out build/$(STACK)/manifests --charts $(if $(STRICT_CHARTS),,--allow-unreachable)
	$(BIN)/python -m stacks mirror-list $(STACK) $(MIRROR_LIST_ARGS) --allow-incomplete --out build/$(STACK)/mirror-list.txt --out build/$(STACK)/mirror-list.json
	@echo "plan of $(STACK) in build/$(STACK)/: inventory/ (uploaded to the control host), manifests/ (the program's objects), manifests/charts/ (each Helm release, by helm template, when its chart is reachable) and mirror-list.txt/.json (what an air-gapped install must mirror)"

local-cluster: setup ## start etcd + kube-apiserver + controllers + KWOK nodes on loopback (stop: scripts/local_cluster.py stop)
	$(BIN)/python scripts/local_cluster.py start --all

engine: engine-deps ## build the offline engine (Pulumi CLI, plugins, local control plane, the real machines' software) from Go sources (cached)
	K8SP_ENGINE_SOURCES="$(K8SP_ENGINE_SOURCES)" scripts/engine.sh

# cgo builds of the engine: pause (static C), runc and flanneld (static, runc with libseccomp)
engine-deps:
	@missing=""; command -v gcc >/dev/null || missing="$$missing gcc"; \
	  [ -f /usr/include/stdio.h ] || missing="$$missing libc6-dev"; \
	  [ -f /usr/include/seccomp.h ] || missing="$$missing libseccomp-dev"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; fi; fi

stack: setup
	@mkdir -p .pulumi-state
	@$(PULUMI_ENV) && pulumi stack select --create $(STACK) --non-interactive >/dev/null

preview: stack ## pulumi preview --diff of STACK (default dev); contacts no machine
	$(PULUMI_ENV) && pulumi preview --diff --stack $(STACK) $(ARGS)

up: stack ## pulumi up of STACK [ARGS=--yes] (refuses while the example placeholder secrets are set)
	$(PULUMI_ENV) && pulumi up --stack $(STACK) $(ARGS)

destroy: stack
	$(PULUMI_ENV) && pulumi destroy --stack $(STACK) $(ARGS)

preview-all: setup ## pulumi preview --diff of every stack (one per Pulumi.<stack>.yaml)
	@failed=""; for s in $(STACKS); do \
	  echo "== pulumi preview --diff --stack $$s"; \
	  $(MAKE) --no-print-directory preview STACK=$$s || failed="$$failed $$s"; \
	done; if [ -n "$$failed" ]; then echo "preview failed for:$$failed"; exit 1; fi

drift: stack ## STACK=…: refresh + preview --expect-no-changes; exit 1 with a summary of what drifted
	$(PULUMI_ENV) && $(BIN)/python -m stacks drift $(STACK)

new-stack: setup ## NAME=… FROM=…: write Pulumi.NAME.yaml shaped like FROM, without its machines and secrets
	$(BIN)/python -m stacks new $(NAME) --from $(FROM) $(if $(ENVIRONMENT),--environment $(ENVIRONMENT))

promote: setup ## SRC=… DST=… [ONLY=apps.x,helm.releases.y] [DRY_RUN=1]: copy promotable settings
	$(BIN)/python -m stacks promote $(SRC) $(DST) $(if $(ONLY),--only $(ONLY)) $(if $(DRY_RUN),--dry-run)

rollback: stack ## STACK=… [TO=N] [YES=1]: re-apply an earlier successful update's config
	$(PULUMI_ENV) && $(BIN)/python -m stacks rollback $(STACK) $(if $(TO),--to $(TO)) $(if $(YES),--yes) $(if $(ONLY),--only $(ONLY))

recover: stack ## STACK=… [YES=1]: after a crashed run, clear its lock and what it left in flight
	$(PULUMI_ENV) && PATH="$$PATH:$$(scripts/tools.sh)" $(BIN)/python -m stacks recover $(STACK) $(if $(YES),--yes)

# runs per benchmark (medians); .ci/run runs each documented benchmark once (BENCH_RUNS=1) so a broken one fails CI
BENCH_RUNS ?= 3

bench: setup ## render time per app for 10/100/500 apps (median of runs)
	$(BIN)/python bench/bench_render.py --sizes 10 100 500 --runs $(BENCH_RUNS)

bench-e2e: setup ## median wall time of a full up, a no-op up and a preview with the real engine (needs make engine)
	$(BIN)/python bench/bench_e2e.py --runs $(BENCH_RUNS)

bench-backend: setup ## median time of up/no-op up/destroy on the file backend vs S3 (SeaweedFS; needs make engine)
	$(BIN)/python bench/bench_backend.py --runs $(BENCH_RUNS)

clean:
	rm -rf render .pytest_cache .mypy_cache .ruff_cache
