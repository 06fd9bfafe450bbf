# common/: code shared by heliosproxy, helios-cp and helioctl.
COMMON_SRCS := $(filter-out common/toml-decode.c,$(wildcard common/*.c))
COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRCS)) $(PROTO_OBJ)
COMMON_LIB := $(BUILD)/lib/libhelioscommon.a

$(COMMON_LIB): $(COMMON_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

TOOL_SRCS := common/toml-decode.c
$(BIN)/toml-decode: $(BUILD)/obj/common/toml-decode.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $^ -o $@ $(LDFLAGS_ALL) $(LINK_LIBS)

PROGRAMS += $(BIN)/toml-decode

# The dashboard page (common/dashboard/) is assembled into every program that
# links the common library (.incbin): rebuilt when a file of it changes.
DASHBOARD_FILES := $(wildcard common/dashboard/*)
$(COMMON_LIB): $(BUILD)/obj/common/dashboard_assets.o
$(BUILD)/obj/common/dashboard_assets.o: common/dashboard_assets.S $(DASHBOARD_FILES)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@
