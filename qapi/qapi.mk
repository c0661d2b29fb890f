# The monitor's generated sources; included by the top-level Makefile.
#
# scripts/qapi-gen.py compiles qapi/schema/*.json into C tables (types,
# commands, events, the query-qmp-schema text), the handler table with its
# prototypes, and the QMP reference $(BUILD)/docs/qmp.md.

# core.json first: its section opens docs/qmp.md.
QAPI_SCHEMA := qapi/schema/core.json \
               $(filter-out qapi/schema/core.json, \
                            $(sort $(wildcard qapi/schema/*.json)))
QAPI_GEN_SRCS := $(BUILD)/qapi/qapi-gen-schema.c \
                 $(BUILD)/qapi/qapi-gen-commands.c
QAPI_GEN_HDRS := $(BUILD)/qapi/qapi-commands.h
QAPI_GEN_OBJS := $(QAPI_GEN_SRCS:.c=.o)
QAPI_DOC := $(BUILD)/docs/qmp.md

LIB_OBJS += $(QAPI_GEN_OBJS)

$(QAPI_GEN_SRCS) $(QAPI_GEN_HDRS) $(QAPI_DOC) &: $(QAPI_SCHEMA) \
        scripts/qapi-gen.py
	@mkdir -p $(BUILD)/qapi $(BUILD)/docs
	@echo "  GEN     qapi (schema tables, commands, docs/qmp.md)"
	$(Q)python3 scripts/qapi-gen.py \
	  --c-schema $(BUILD)/qapi/qapi-gen-schema.c \
	  --c-commands $(BUILD)/qapi/qapi-gen-commands.c \
	  --h-commands $(BUILD)/qapi/qapi-commands.h \
	  --doc $(QAPI_DOC) $(QAPI_SCHEMA)

$(QAPI_GEN_OBJS): %.o: %.c $(QAPI_GEN_HDRS) $(BUILD)/config-host.mak \
        | $(TRACE_HDRS)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# Whatever may include the generated header waits for it.
$(patsubst %.c,$(BUILD)/%.o,$(wildcard qapi/*.c tools/*.c \
        tests/qtest/*.c tests/bench/*.c)): $(QAPI_GEN_HDRS)

all: $(QAPI_DOC)

# Fails when a command or event lacks its doc or example.
check-qapi-schema:
	$(Q)python3 scripts/qapi-gen.py --strict $(QAPI_SCHEMA)

.PHONY: check-qapi-schema
