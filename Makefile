# clusterf — build, test, bench.
# `make` builds the three programs and build/libclusterf.a; `make test` runs every suite and
# ends with one line "N passed, N failed, N skipped". Nothing here downloads anything:
# scripts/install-deps installs the Debian packages first.

CC      ?= gcc
BUILD   ?= build
PKGS    := grpc libprotobuf-c libnl-genl-3.0 libnl-3.0 json-c libcurl libmicrohttpd
OPT     ?= -O2 -g
SAN     ?=
CFLAGS_ALL := -std=gnu11 -Itests/lib $(OPT) $(SAN) -Wall -Wextra -Werror -D_GNU_SOURCE \
              -Isrc -Igenerated $(shell pkg-config --cflags $(PKGS)) $(CFLAGS)
LDFLAGS_ALL := $(SAN) $(LDFLAGS)
LDLIBS_ALL  := $(shell pkg-config --libs $(PKGS)) -lpthread -lm $(LDLIBS)

# Library: every module under src/ except the mains, plus the protoc-c output.
LIB_SRCS := $(sort $(filter-out src/cmd/%,$(wildcard src/*/*.c)))
GEN_SRCS := $(sort $(shell find generated -name '*.pb-c.c' 2>/dev/null))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(GEN_SRCS:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libclusterf.a

PROGS := $(BUILD)/clusterf-ipvs $(BUILD)/clusterf-docker $(BUILD)/clusterfctl

# Tests: each tests/<suite>/test_*.c is one binary linked with tests/lib/ and the library.
TESTLIB_SRCS := $(sort $(wildcard tests/lib/*.c))
TESTLIB_OBJS := $(TESTLIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_TESTS   := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/unit/test_*.c)))
INTEG_TESTS  := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/integration/test_*.c)))
VM_TESTS     := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/vm/test_*.c)))
# In-guest programs (tests/vm/guest_*.c), run by tests/vm/test_*.sh inside scripts/vm-run.
VM_GUESTS    := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/vm/guest_*.c)))
DOCKER_TESTS := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/docker/test_*.c)))
BENCHES      := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/bench/bench_*.c)))
# Helpers of `make bench` that also run in the VM (tests/bench/guest_*.c).
BENCH_GUESTS := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/bench/guest_*.c)))
TEST_BINS    := $(UNIT_TESTS) $(INTEG_TESTS) $(VM_TESTS) $(DOCKER_TESTS)

.PHONY: all test asan memcheck bench bench-ipvs proto check-generated fuzz fuzz-build soak demo clean tests image
.SECONDARY:
all: $(PROGS) $(LIB)

# `make V=1` shows the full commands.
Q := $(if $(V),,@)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  CC    $<',true)
	$(Q)$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/clusterf-%: $(BUILD)/src/cmd/clusterf-%.o $(LIB)
	@$(if $(Q),echo '  LINK  $@',true)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

$(BUILD)/clusterfctl: $(BUILD)/src/cmd/clusterfctl.o $(LIB)
	@$(if $(Q),echo '  LINK  $@',true)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTLIB_OBJS) $(LIB)
	@$(if $(Q),echo '  LINK  $@',true)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(TESTLIB_OBJS) $(LIB) $(LDLIBS_ALL)

tests: all $(TEST_BINS) $(VM_GUESTS) $(BENCHES) $(BENCH_GUESTS)

# Every suite; the runner prints the closing line and fails on any failure.
test: tests
	BUILD=$(BUILD) scripts/run-tests

# The same suites under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer at
# exit), in build-asan/. Every sanitized process writes its reports under
# build-asan/sanitizer/<suite>/ (scripts/run-tests; in the VM scripts/vm-sanitized), and any
# report fails its suite, daemons and VM guests included. -static-libubsan: gcc's shared
# libubsan beside libasan ignores log_path (its reports would only reach stderr).
ASAN_RUN_OPTIONS := detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0
asan:
	CLUSTERF_SANITIZER_REPORTS=$(CURDIR)/build-asan/sanitizer ASAN_OPTIONS=$(ASAN_RUN_OPTIONS) \
	CLUSTERF_SUITE_TIMEOUT_test_frontends_sh=3000 \
	UBSAN_OPTIONS=print_stacktrace=1 $(MAKE) BUILD=build-asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -static-libubsan -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

# The compiled unit and native integration suites under valgrind memcheck, with the daemons
# and clusterfctl they start (tests/memcheck/mkwrap makes $(BUILD)-memcheck/, whose programs run
# under tests/memcheck/vg). An error or a definite leak in any of them fails its suite; logs in
# $(BUILD)-memcheck/reports/<suite>/. Under valgrind gRPC and TLS run many times slower: the
# programs get 30 s per etcd request (CLUSTERF_ETCD_TIMEOUT) instead of 5 s, and the suites
# multiply their time bounds (wait caps, lease TTLs, the deadlines they pass) by
# MEMCHECK_SLOW_FACTOR (CLUSTERF_SLOW_FACTOR, tests/lib/check.h); their assertions stay.
MEMCHECK_SLOW_FACTOR ?= 10
memcheck: tests
	tests/memcheck/mkwrap $(BUILD) $(BUILD)-memcheck
	CLUSTERF_ETCD_TIMEOUT=30s CLUSTERF_SLOW_FACTOR=$(MEMCHECK_SLOW_FACTOR) \
	CLUSTERF_SANITIZER_REPORTS=$(CURDIR)/$(BUILD)-memcheck/reports \
	CLUSTERF_SUITE_WRAPPER=$(CURDIR)/tests/memcheck/vg BUILD=$(BUILD)-memcheck \
	  scripts/run-tests memcheck/tests/unit/ memcheck/tests/integration/

# Every scale figure of issue #8 next to its reference (tests/bench/run-bench: native + VM),
# a table and $(BUILD)/bench/results.json; BENCH_SCALE=2000 etc. for a quick run. bench_lb first.
bench: all $(BENCHES) $(BENCH_GUESTS)
	$(BUILD)/tests/bench/bench_lb
	BUILD=$(BUILD) tests/bench/run-bench

# libFuzzer targets tests/fuzz/fuzz_*.c over config/ + lb/ (pure code, so built straight from
# their sources with clang), each run by tests/fuzz/run-fuzzer for FUZZ_SECONDS or FUZZ_RUNS
# executions, whichever ends first (0 = that bound is off; `make fuzz FUZZ_SECONDS=0
# FUZZ_RUNS=10000000` runs 10M executions of each).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?= 0
FUZZ_FLAGS   := -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -D_GNU_SOURCE -Isrc -Itests/lib $(shell pkg-config --cflags json-c)
FUZZ_SRCS    := $(sort $(wildcard src/config/*.c src/lb/*.c)) src/common/bytemap.c src/common/vec.c tests/lib/lb_dump.c
FUZZERS      := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_SRCS) $(wildcard src/config/*.h src/lb/*.h src/common/bytemap.h src/common/vec.h tests/lib/lb_dump.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo '  FUZZ  $@',true)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRCS) $(shell pkg-config --libs json-c)

fuzz-build: $(FUZZERS)

fuzz: $(FUZZERS)
	@set -e; for f in $(FUZZERS); do echo "== $$f ($(FUZZ_SECONDS)s, $(FUZZ_RUNS) runs)"; \
	  tests/fuzz/run-fuzzer $(BUILD) $$(basename $$f) $(FUZZ_SECONDS) $(FUZZ_RUNS); done

# The long fault suite (issue #9): the long version (CLUSTERF_SOAK=1) of each fault suite whose
# short version runs in `make test` -- vm/test_soak (10k changes, 20 etcd kill -9, compaction,
# drift; hours of emulated time), docker/test_docker_faults (50 kill -9 of clusterf-docker and
# of clusterfctl register), integration/test_member_faults (10 rounds of 3-member kills and
# SIGSTOPs), integration/test_ipvsd_read_slices (110k keys applied in slices, signals between) -- then every
# fuzzer for SOAK_FUZZ_RUNS executions or SOAK_FUZZ_SECONDS, whichever
# ends first. fuzz_parse does 10M in ~25 min here. fuzz_store recomputes the whole table after
# each event and compares it with the incremental one in one pass (it used to print and compare
# one text dump per service through a memory stream: ~480 exec/s). On the same inputs that is
# 3.5x less CPU per execution on a quiet machine, 25-30x under load (the streams' syscalls and page
# faults were what load hurt); the fuzzer now does ~2,400-3,100 executions per CPU second, so 10M
# take about an hour of an idle core. With other engineers' VMs loading the 2 cores it got only
# 450-780 exec/s of wall time (2.64M in 56 min): SOAK_FUZZ_SECONDS=0 makes sure of 10M there.
SOAK_FUZZ_RUNS    ?= 10000000
SOAK_FUZZ_SECONDS ?= 0
SOAK_SUITES       := vm/test_soak docker/test_docker_faults integration/test_member_faults \
                     integration/test_ipvsd_read_slices
soak: tests $(FUZZERS)
	CLUSTERF_SOAK=1 BUILD=$(BUILD) CLUSTERF_SUITE_TIMEOUT_test_soak_sh=30000 \
	  CLUSTERF_SUITE_TIMEOUT_test_docker_faults=3600 CLUSTERF_SUITE_TIMEOUT_test_member_faults=3600 \
	  scripts/run-tests $(SOAK_SUITES)
	$(MAKE) fuzz FUZZ_SECONDS=$(SOAK_FUZZ_SECONDS) FUZZ_RUNS=$(SOAK_FUZZ_RUNS)

# In the VM: 2,000 IPVS services with the batched API vs `ipvsadm -R` (tests/bench/ipvs-vm.sh).
bench-ipvs: tests
	tests/bench/ipvs-vm.sh

# Regenerate generated/ from proto/ with protoc-c.
proto:
	scripts/gen-proto generated

# Fails when generated/ differs from what protoc-c makes of proto/.
check-generated:
	scripts/gen-proto --check generated

# The container image (deploy/Dockerfile) built with a private dockerd and saved with `docker save`
# as clusterf:latest and clusterf:VERSION (scripts/build-image); rebuilt when one of its inputs
# changes. Needs root, dockerd and debootstrap (the Debian base image is made locally).
IMAGE_INPUTS := Makefile deploy/Dockerfile deploy/collect-rootfs scripts/install-deps scripts/build-image \
                $(sort $(wildcard src/*/*.c src/*/*.h)) $(GEN_SRCS) $(sort $(shell find generated -name '*.h' 2>/dev/null))

image: $(BUILD)/image/clusterf.tar

$(BUILD)/image/clusterf.tar: $(IMAGE_INPUTS)
	scripts/build-image $@

demo:
	scripts/install-deps
	$(MAKE) all
	scripts/demo

clean:
	rm -rf build build-asan build-memcheck

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
