# proto/: helios.proto compiled by protoc-c into $(BUILD)/gen/proto/ at build
# time (never committed). Every object waits for the header (order-only), so
# a clean build works without dependency files.
PROTO_SRC := proto/helios.proto
PROTO_C := $(BUILD)/gen/proto/helios.pb-c.c
PROTO_H := $(BUILD)/gen/proto/helios.pb-c.h
PROTO_OBJ := $(BUILD)/obj/gen/proto/helios.pb-c.o

$(PROTO_C) $(PROTO_H) &: $(PROTO_SRC)
	@mkdir -p $(BUILD)/gen
	@$(if $(Q),echo "  PROTOC  $<")
	$(Q)protoc-c --c_out=$(BUILD)/gen $(PROTO_SRC)

# Generated code: our warnings do not apply to it.
$(PROTO_OBJ): $(PROTO_C) $(PROTO_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -std=gnu11 -I$(BUILD)/gen $(MODE_CFLAGS) $(CFLAGS) -c $< -o $@
