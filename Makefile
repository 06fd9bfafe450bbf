# HeliosProxy: one non-recursive Makefile. Per-folder fragments (*/*.mk) add
# their sources; everything is built under build/$(MODE)/.
#   make                 release build: build/release/bin/heliosproxy
#   make MODE=asan       AddressSanitizer + UBSan build
#   make check           deps, build, unit tests (asan+ubsan), fuzz smoke run, TOML conformance,
#                        integration (release build on io_uring, ASan+UBSan build on epoll)
#   make fuzz            every libFuzzer target for FUZZ_SECS (default 60) seconds each
#   make demo / demo-stop
#   make image           OCI image localhost/heliosproxy:<version> from Debian packages
#   make k8s-check       deploy/ rendered, validated and played with podman kube play
#   make install         PREFIX=/usr/local DESTDIR=: programs, man pages, systemd units
#                        (deploy/install.mk); make uninstall, make man (build/man/)
#   V=1                  show full commands

MODE ?= release
BUILD ?= build/$(MODE)
BIN := $(BUILD)/bin

CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
# C++ only for dataplane/plugin/wasm.cc (the binding to WABT's interpreter)
CXX ?= g++
ifeq ($(origin CXX),default)
CXX := g++
endif

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Werror=implicit-function-declaration
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE -I. -I$(BUILD)/gen -I/usr/include/postgresql $(WARN) -MMD -MP -pthread
BASE_LDFLAGS := -pthread

ifeq ($(MODE),release)
  MODE_CFLAGS := -O2 -g -DNDEBUG
else ifeq ($(MODE),debug)
  MODE_CFLAGS := -O0 -g3
else ifeq ($(MODE),asan)
  MODE_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  MODE_LDFLAGS := -fsanitize=address,undefined
else ifeq ($(MODE),ubsan)
  MODE_CFLAGS := -O1 -g -fsanitize=undefined -fno-sanitize-recover=undefined
  MODE_LDFLAGS := -fsanitize=undefined
else ifeq ($(MODE),tsan)
  MODE_CFLAGS := -O1 -g -fsanitize=thread
  MODE_LDFLAGS := -fsanitize=thread
else
  $(error MODE must be one of release, debug, asan, ubsan, tsan)
endif

CFLAGS_ALL := $(BASE_CFLAGS) $(MODE_CFLAGS) $(CFLAGS)
CXXFLAGS_ALL := -std=c++17 -D_GNU_SOURCE -I. -I$(BUILD)/gen -Wall -Wextra -Wshadow \
	-Wno-unused-parameter -Wformat=2 -MMD -MP -pthread $(MODE_CFLAGS) $(CXXFLAGS)
LDFLAGS_ALL := $(BASE_LDFLAGS) $(MODE_LDFLAGS) $(LDFLAGS)

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

.DEFAULT_GOAL := all
PROGRAMS :=
UNIT_TESTS :=

# Every program links the same system libraries (static module libraries
# only pull in what a program uses).
LINK_LIBS := -luring -lssl -lcrypto -lpg_query -lnng -lprotobuf-c -lmicrohttpd -ljansson -lpq -lm \
	-lldap -llber -ljwt \
	-lwabt -Wl,--push-state,--as-needed -lstdc++ -lm -Wl,--pop-state

include proto/proto.mk
include bpf/bpf.mk
include common/common.mk
include controlplane/controlplane.mk
include dataplane/dataplane.mk
include cli/cli.mk
include tests/tests.mk
include plugins/plugins.mk
include deploy/install.mk

ALL_SRCS := $(COMMON_SRCS) $(DATAPLANE_SRCS) $(DATAPLANE_MAIN) $(TOOL_SRCS) $(UNIT_TEST_SRCS) \
	$(CP_SRCS) $(CP_MAIN) $(CLI_SRCS)
DEPS := $(patsubst %.c,$(BUILD)/obj/%.d,$(ALL_SRCS)) \
	$(patsubst %.cc,$(BUILD)/obj/%.d,$(DATAPLANE_CXX_SRCS))

$(BUILD)/obj/%.o: %.c | $(PROTO_H) $(BPF_SKELS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/obj/%.o: %.cc | $(PROTO_H) $(BPF_SKELS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $<")
	$(Q)$(CXX) $(CXXFLAGS_ALL) -c $< -o $@

all: $(PROGRAMS) plugins

.PHONY: all deps check unit unit-tests toml-conformance integration demo demo-stop format \
	format-check layers clean docs bench fuzz image k8s-check man install install-strip uninstall

deps:
	$(Q)bash scripts/deps.sh

# Unit tests always run under ASan+UBSan, whatever MODE says.
unit:
	$(Q)$(MAKE) --no-print-directory MODE=asan unit-tests
	$(Q)bash scripts/run-unit.sh build/asan

unit-tests: $(UNIT_TESTS) $(PROGRAMS) plugins

# libFuzzer targets (tests/fuzz/, built with clang by scripts/fuzz.sh into
# build/fuzz/, corpora kept there). make check runs each for FUZZ_CHECK_SECS.
FUZZ_SECS ?= 60
FUZZ_CHECK_SECS ?= 6
fuzz:
	$(Q)bash scripts/fuzz.sh $(FUZZ_SECS)

toml-conformance: $(BIN)/toml-decode
	$(Q)/usr/bin/python3 tests/toml/run_toml_test.py --decoder $(BIN)/toml-decode

integration: all
	$(Q)HELIOS_BIN=$(abspath $(BIN)) bash scripts/run-integration.sh

# make check's integration runs: each I/O backend once, one of them with the
# sanitizers (a report fails the run); `make integration` runs both backends
# with one build.
CHECK_INTEGRATION_RUNS := io_uring:$(CURDIR)/build/release/bin epoll:$(CURDIR)/build/asan/bin

check: deps
	$(Q)$(MAKE) --no-print-directory format-check
	$(Q)$(MAKE) --no-print-directory layers
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECS=$(FUZZ_CHECK_SECS)
	$(Q)$(MAKE) --no-print-directory MODE=asan toml-conformance
	$(Q)$(MAKE) --no-print-directory MODE=release all
	$(Q)$(MAKE) --no-print-directory MODE=asan all
	$(Q)INTEGRATION_RUNS="$(CHECK_INTEGRATION_RUNS)" bash scripts/run-integration.sh
	$(Q)$(MAKE) --no-print-directory k8s-check

# The release programs in an image (scripts/build-image.sh; cached root file
# system in build/image/). podman and buildah read deploy/image/containers.conf.
image:
	$(Q)$(MAKE) --no-print-directory MODE=release all
	$(Q)bash scripts/build-image.sh heliosproxy

# deploy/ rendered with kubectl kustomize, checked against the Kubernetes object
# models, and played with podman kube play beside a PostgreSQL pod
# (tests/k8s/run.sh; skipped with the reason where podman cannot run containers).
k8s-check:
	$(Q)bash tests/k8s/run.sh

demo: deps all
	$(Q)HELIOS_BIN=$(abspath $(BIN)) bash scripts/demo.sh start

demo-stop:
	$(Q)bash scripts/demo.sh stop

# make bench: HeliosProxy vs PgBouncer vs direct PostgreSQL with pgbench in one
# run; writes docs/benchmarks.md (~15 min; BENCH_ROUNDS / BENCH_SECS shorten it).
bench: deps all
	$(Q)HELIOS_BIN=$(abspath $(BIN)) bash bench/run.sh

# docs/configuration.md is generated from the key table (common/cfg_keys.c);
# a unit test fails when it is stale.
docs: $(BIN)/heliosproxy
	$(Q)$(BIN)/heliosproxy --print-config-docs > docs/configuration.md

# tracked and new (not ignored) files, so a file not yet added is checked too
FORMAT_FILES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.cc' '*.h' 2>/dev/null)
format:
	$(Q)clang-format -i $(FORMAT_FILES)

format-check:
	$(Q)clang-format --dry-run --Werror $(FORMAT_FILES)

# The data plane's layers (docs/architecture.md): no include cycle between
# its modules, struct client / struct server private to dataplane/conn/.
layers:
	$(Q)/usr/bin/python3 scripts/layers.py --private

clean:
	rm -rf build

-include $(DEPS)
