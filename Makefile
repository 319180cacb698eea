# The two commands of the README:
#   make run    set up everything, build, start the server on 127.0.0.1:8080
#   make test   set up everything, build, run every test
# Both work on a fresh Debian 12 machine (scripts/bootstrap installs what is missing).
BUILD_DIR ?= build
LLAMA_DIR ?=
CMAKE_FLAGS ?=
ifneq ($(LLAMA_DIR),)
CMAKE_FLAGS += -DMW_LLAMA_DIR=$(LLAMA_DIR)
endif
JOBS ?= $(shell nproc)

.PHONY: all bootstrap configure build run test test-unit test-browser test-torture bench soak fuzz package clean

all: build

bootstrap:
	@scripts/bootstrap

configure: bootstrap
	@test -f $(BUILD_DIR)/build.ninja || cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS)

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	$(BUILD_DIR)/bin/modelwarden serve $(ARGS)

test: build
	@scripts/run-tests $(BUILD_DIR)

test-torture: build
	@MW_TORTURE_ROUNDS=$${MW_TORTURE_ROUNDS:-200} scripts/run-tests $(BUILD_DIR) torture

# The Debian package (CPack): $(BUILD_DIR)/packages/modelwarden_VERSION_ARCH.deb
package: build
	@cd $(BUILD_DIR) && cpack -G DEB -B packages && ls packages/*.deb

bench: build
	@scripts/run-bench $(BUILD_DIR)

# SPEC §19 soak (not in CI): mixed /v1 traffic with engines SIGKILLed and
# SIGSTOPped at random for MINUTES; reports requests by outcome, hangs judged,
# orphans, RSS and fd growth (docs/reliability.md).
MINUTES ?= 10
soak: build
	@node bench/soak.mjs --build-dir $(BUILD_DIR) --minutes $(MINUTES) $(SOAK_ARGS)

fuzz: bootstrap
	@scripts/run-fuzz long

clean:
	rm -rf $(BUILD_DIR)
