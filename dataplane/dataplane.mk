# dataplane/: the heliosproxy program. Every .c below dataplane/ except main.c
# goes into a library so unit tests can link single modules.
DATAPLANE_MAIN := dataplane/main.c
DATAPLANE_SRCS := $(filter-out $(DATAPLANE_MAIN),$(wildcard dataplane/*.c dataplane/*/*.c dataplane/*/*/*.c))
# dataplane/plugin/wasm.cc: the one C++ file (WABT's interpreter is C++)
DATAPLANE_CXX_SRCS := $(wildcard dataplane/*/*.cc)
DATAPLANE_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(DATAPLANE_SRCS)) \
	$(patsubst %.cc,$(BUILD)/obj/%.o,$(DATAPLANE_CXX_SRCS))
DATAPLANE_LIB := $(BUILD)/lib/libheliosdp.a

$(DATAPLANE_LIB): $(DATAPLANE_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/heliosproxy: $(BUILD)/obj/$(DATAPLANE_MAIN:.c=.o) $(DATAPLANE_LIB) $(CP_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $^ -o $@ $(LDFLAGS_ALL) $(LINK_LIBS) -lsystemd

PROGRAMS += $(BIN)/heliosproxy
