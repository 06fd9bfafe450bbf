# bpf/: eBPF programs (*.bpf.c) compiled by clang, wrapped by bpftool into
# libbpf skeletons ($(BUILD)/gen/bpf/<name>.skel.h) at build time, against a
# vmlinux.h dumped from the running kernel's BTF. Nothing generated is
# committed. Where clang, bpftool, libbpf or the BTF is missing (or
# HELIOS_NO_BPF=1) the fast path is built out: HELIOS_HAVE_BPF is 0 and the
# programs relay in userspace and refuse [xdp] enabled with a clear error.
BPF_CLANG ?= clang
BPFTOOL ?= $(or $(shell command -v bpftool 2>/dev/null),$(wildcard /usr/sbin/bpftool))
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_ARCH := $(patsubst x86_64,x86,$(patsubst aarch64,arm64,$(shell uname -m)))

HAVE_BPF := 0
ifneq ($(HELIOS_NO_BPF),1)
ifneq ($(and $(shell command -v $(BPF_CLANG) 2>/dev/null),$(BPFTOOL),$(wildcard $(VMLINUX_BTF)),$(wildcard /usr/include/bpf/libbpf.h)),)
HAVE_BPF := 1
endif
endif

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_SKELS :=
ifeq ($(HAVE_BPF),1)
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/gen/bpf/%.skel.h,$(BPF_SRCS))
CFLAGS_ALL += -DHELIOS_HAVE_BPF=1
LINK_LIBS += -lbpf -lelf -lz
endif

$(BUILD)/gen/bpf/vmlinux.h:
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BTF     $@")
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

# -g keeps the BTF libbpf needs; the skeleton embeds the object.
$(BUILD)/gen/bpf/%.bpf.o: bpf/%.bpf.c $(BUILD)/gen/bpf/vmlinux.h $(wildcard bpf/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BPF     $<")
	$(Q)$(BPF_CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(BUILD)/gen/bpf -I. \
		-Wall -Wno-unused-function -c $< -o $@

$(BUILD)/gen/bpf/%.skel.h: $(BUILD)/gen/bpf/%.bpf.o
	@$(if $(Q),echo "  SKEL    $@")
	$(Q)$(BPFTOOL) gen skeleton $< name hp_$* > $@.tmp && mv $@.tmp $@

# the chain .bpf.c -> .bpf.o -> .skel.h must not be deleted as intermediate
.SECONDARY: $(BPF_SKELS) $(BPF_SKELS:.skel.h=.bpf.o)
