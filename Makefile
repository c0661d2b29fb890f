# iovd - non-recursive GNU Makefile; everything is built in $(BUILD).
#   make            build iovd and iovd-ctl
#   make run        install deps, configure, build, start iovd (default config)
#   make check      install deps, configure, build, run the whole test suite
#   make bench      benchmarks, results into docs/performance.md
#   make install    programs, man pages, systemd units, docs into $(PREFIX)
#                   (DESTDIR=... for packagers)
#   make clean
# BUILD=build-san selects another build directory (configured separately).

BUILD ?= build
SRC := .
Q ?= @

-include $(BUILD)/config-host.mak

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:

# Configure on first use (deps first, so a fresh machine just works); a
# tree configured before is configured again as it was (CONFIGURE_ARGS)
# unless CONFIGURE_FLAGS says otherwise.
$(BUILD)/config-host.mak: configure VERSION
	$(Q)scripts/install-deps.sh
	$(Q)./configure --builddir=$(BUILD) \
	  $(if $(CONFIGURE_FLAGS),$(CONFIGURE_FLAGS),$(CONFIGURE_ARGS))

deps:
	$(Q)scripts/install-deps.sh

# ---- sources -------------------------------------------------------------
LIB_DIRS := util hw/core hw/pci hw/vfio-user hw/misc hw/nvme hw/virtio \
            hw/net block net qapi
LIB_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
TRACE_FILES := $(wildcard $(addsuffix /trace-events,$(LIB_DIRS)))
TRACE_HDRS := $(patsubst %/trace-events,$(BUILD)/%/trace.h,$(TRACE_FILES))

QOS_SRCS := $(wildcard tests/qtest/libqos/*.c)
QOS_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(QOS_SRCS))

UNIT_SRCS := $(wildcard tests/unit/test-*.c)
UNIT_BINS := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRCS))
QTEST_SRCS := $(wildcard tests/qtest/*-test.c)
QTEST_BINS := $(patsubst %.c,$(BUILD)/%,$(QTEST_SRCS))
BENCH_SRCS := $(wildcard tests/bench/*-bench.c)
BENCH_BINS := $(patsubst %.c,$(BUILD)/%,$(BENCH_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_BINS := $(patsubst %.c,$(BUILD)/%,$(FUZZ_SRCS))

# Generated sources and rules of the monitor (schema tables, docs).
-include qapi/qapi.mk

ALL_CFLAGS = $(CFLAGS) $(PKG_CFLAGS) -I$(BUILD) -I$(SRC) -MMD -MP
ALL_LIBS = $(PKG_LIBS) -lm

# ---- rules ---------------------------------------------------------------
PROGS := $(BUILD)/iovd $(if $(wildcard tools/iovd-ctl.c),$(BUILD)/iovd-ctl)
all: $(PROGS)

$(BUILD)/%/trace.h: %/trace-events scripts/tracetool.py $(BUILD)/config-host.mak
	@mkdir -p $(dir $@)
	$(Q)python3 scripts/tracetool.py $< $@

$(BUILD)/%.o: %.c $(BUILD)/config-host.mak | $(TRACE_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libiovd.a: $(LIB_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/libqos.a: $(QOS_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

# Devices register themselves from constructors: link the whole library.
WHOLE_LIB = -Wl,--whole-archive $(BUILD)/libiovd.a -Wl,--no-whole-archive

$(BUILD)/iovd: $(BUILD)/iovd.o $(BUILD)/libiovd.a
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(WHOLE_LIB) $(ALL_LIBS)

$(BUILD)/iovd-ctl: $(BUILD)/tools/iovd-ctl.o $(BUILD)/libiovd.a
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libiovd.a $(ALL_LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(BUILD)/libiovd.a
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(WHOLE_LIB) $(CHECK_LIBS) $(ALL_LIBS)

$(BUILD)/tests/qtest/%: $(BUILD)/tests/qtest/%.o $(BUILD)/libqos.a $(BUILD)/libiovd.a
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libqos.a $(BUILD)/libiovd.a $(CHECK_LIBS) $(ALL_LIBS)

$(BUILD)/tests/bench/%: $(BUILD)/tests/bench/%.o $(BUILD)/libqos.a $(BUILD)/libiovd.a
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/libqos.a $(BUILD)/libiovd.a $(ALL_LIBS)

$(BUILD)/tests/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/libqos.a $(BUILD)/libiovd.a
	@echo "  LINK    $@"
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libqos.a $(WHOLE_LIB) $(ALL_LIBS)

$(BUILD)/tests/%.o: ALL_CFLAGS += $(CHECK_CFLAGS)

TEST_BINS := $(UNIT_BINS) $(QTEST_BINS)
# The device suites again with every device on one of two iothreads
# (busy polling on): the iothread data path under the same tests.
IOTHREAD_QTESTS := $(filter %/nvme-test %/virtio-blk-test \
                   %/virtio-net-test %/e1000-test %/vfio-user-test \
                   %/nbd-test %/rbd-test %/migration-test \
                   %/nvme-subsys-test %/nvme-resv-test %/upgrade-test \
                   %/throttle-group-test %/net-throttle-test, \
                   $(QTEST_BINS))
TEST_RUNS := $(TEST_BINS) $(addprefix IOVD_TEST_IOTHREAD=2@,$(IOTHREAD_QTESTS))
# Named here so make keeps them (they are not intermediate files).
TEST_OBJS := $(addsuffix .o,$(TEST_BINS) $(BENCH_BINS) $(FUZZ_BINS))
$(TEST_OBJS):

build-tests: all $(TEST_BINS)

check: build-tests
	$(Q)IOVD_BIN=$(abspath $(BUILD)/iovd) IOVD_CTL=$(abspath $(BUILD)/iovd-ctl) \
	  tests/run-tests.sh $(TEST_RUNS)

check-unit: all $(UNIT_BINS)
	$(Q)tests/run-tests.sh $(UNIT_BINS)

check-qtest: all $(QTEST_BINS)
	$(Q)IOVD_BIN=$(abspath $(BUILD)/iovd) tests/run-tests.sh $(QTEST_BINS)

check-guest: all
	$(Q)IOVD_BIN=$(abspath $(BUILD)/iovd) IOVD_CTL=$(abspath $(BUILD)/iovd-ctl) \
	  tests/guest/run.sh

bench: all $(BENCH_BINS)
	$(Q)IOVD_BIN=$(abspath $(BUILD)/iovd) BENCH_DIR=$(abspath $(BUILD)/tests/bench) \
	  tests/bench/run.sh

run: all
	$(Q)scripts/run-default.sh $(abspath $(BUILD)/iovd)

# libFuzzer targets, in their own clang build (build-fuzz).  make fuzz runs
# each FUZZ_SECS seconds (default 600) from its seed corpus
# (tests/fuzz/corpus/TARGET, plus what earlier runs found in
# build-fuzz/corpus/TARGET); make check-fuzz replays the seeds and fuzzes
# each briefly, from a fixed random seed (CI).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECS ?= 600
fuzz-build:
	$(Q)[ -f $(FUZZ_BUILD)/config-host.mak ] || \
	  { scripts/install-deps.sh && ./configure --builddir=$(FUZZ_BUILD) --cc=clang --enable-fuzzing; }
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) fuzz-bins

fuzz-bins: $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)tests/fuzz/run.sh $(abspath $(FUZZ_BUILD)) $(FUZZ_SECS)

check-fuzz: fuzz-build
	$(Q)tests/fuzz/run.sh $(abspath $(FUZZ_BUILD)) 10 1

# ---- what a daemon installs -----------------------------------------------
# Man pages from the programs' own --help (scripts/mkman.py) and
# docs/man/*.in; systemd templates from contrib/systemd.
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/iovd
UNITDIR ?= $(PREFIX)/lib/systemd/system
MAN_PAGES := $(BUILD)/man/iovd.1 $(BUILD)/man/iovd-ctl.1
UNITS := $(BUILD)/systemd/iovd@.service $(BUILD)/systemd/iovd@.socket
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(PREFIX)/bin|g' \
            -e 's|@UNITDIR@|$(UNITDIR)|g'

# FORCE: PREFIX may differ from one make install to the next.
$(BUILD)/man/%.1: $(BUILD)/% docs/man/%.1.in scripts/mkman.py VERSION FORCE
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)python3 scripts/mkman.py $< docs/man/$*.1.in $@.tmp "$$(cat VERSION)"
	$(Q)$(SUBST) $@.tmp >$@ && rm -f $@.tmp

$(BUILD)/systemd/%: contrib/systemd/% FORCE
	@mkdir -p $(dir $@)
	$(Q)$(SUBST) $< >$@

$(BUILD)/systemd/%: contrib/systemd/%.in FORCE
	@mkdir -p $(dir $@)
	$(Q)$(SUBST) $< >$@

install: all $(MAN_PAGES) $(UNITS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/iovd $(BUILD)/iovd-ctl $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(UNITS) $(DESTDIR)$(UNITDIR)/
	install -m 644 $(QAPI_DOC) README.md docs/architecture.md \
	  contrib/systemd/iovd.conf.example $(DESTDIR)$(DOCDIR)/

clean:
	rm -rf $(BUILD)

FORCE:

.PHONY: all deps check check-unit check-qtest check-guest bench run install FORCE \
        clean build-tests fuzz fuzz-build fuzz-bins check-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
