# make man, make install, make uninstall (GNU conventions; DESTDIR prefixes
# every path). Daemons go to sbin (section 8 pages), helioctl to bin.
#   make install PREFIX=/usr/local DESTDIR=    release build, pages, units,
#                                              example config
#   make install-strip                         the same with stripped programs
# The config folder is SYSCONFDIR/heliosproxy (/etc/heliosproxy): only
# heliosproxy.toml.example is installed there, so an existing configuration
# is never overwritten.
PREFIX ?= /usr/local
EXEC_PREFIX ?= $(PREFIX)
BINDIR ?= $(EXEC_PREFIX)/bin
SBINDIR ?= $(EXEC_PREFIX)/sbin
DATAROOTDIR ?= $(PREFIX)/share
MANDIR ?= $(DATAROOTDIR)/man
DOCDIR ?= $(DATAROOTDIR)/doc/heliosproxy
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
BASHCOMPDIR ?= $(DATAROOTDIR)/bash-completion/completions
INSTALL ?= install
INSTALL_PROGRAM ?= $(INSTALL) -m 0755
INSTALL_DATA ?= $(INSTALL) -m 0644

# Man pages: heliosproxy.toml(5) from the key table (like docs/configuration.md),
# the program pages from docs/man/*.in with each program's --help inside.
MAN_DIR := build/man
MAN_PAGES := $(MAN_DIR)/heliosproxy.8 $(MAN_DIR)/helios-cp.8 $(MAN_DIR)/helioctl.1 \
	$(MAN_DIR)/heliosproxy.toml.5
HELIOS_VERSION_STR = $(word 2,$(shell $(BIN)/heliosproxy --version))

man: $(MAN_PAGES)

$(MAN_DIR)/heliosproxy.toml.5: $(BIN)/heliosproxy
	@mkdir -p $(dir $@)
	$(Q)$(BIN)/heliosproxy --print-config-man > $@.tmp && mv $@.tmp $@

$(MAN_DIR)/%.8: docs/man/%.8.in $(BIN)/% scripts/gen-man.sh
	@mkdir -p $(dir $@)
	$(Q)bash scripts/gen-man.sh $< $(BIN)/$* $(HELIOS_VERSION_STR) > $@.tmp && mv $@.tmp $@

$(MAN_DIR)/%.1: docs/man/%.1.in $(BIN)/% scripts/gen-man.sh
	@mkdir -p $(dir $@)
	$(Q)bash scripts/gen-man.sh $< $(BIN)/$* $(HELIOS_VERSION_STR) > $@.tmp && mv $@.tmp $@

REL_BIN := build/release/bin
UNIT_SUBST := sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

install:
	$(Q)$(MAKE) --no-print-directory MODE=release all man
	$(Q)$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SYSCONFDIR)/heliosproxy
	$(Q)$(INSTALL_PROGRAM) $(REL_BIN)/heliosproxy $(REL_BIN)/helios-cp $(DESTDIR)$(SBINDIR)/
	$(Q)$(INSTALL_PROGRAM) $(REL_BIN)/helioctl $(DESTDIR)$(BINDIR)/
	$(Q)$(INSTALL_DATA) $(MAN_DIR)/helioctl.1 $(DESTDIR)$(MANDIR)/man1/
	$(Q)$(INSTALL_DATA) $(MAN_DIR)/heliosproxy.toml.5 $(DESTDIR)$(MANDIR)/man5/
	$(Q)$(INSTALL_DATA) $(MAN_DIR)/heliosproxy.8 $(MAN_DIR)/helios-cp.8 $(DESTDIR)$(MANDIR)/man8/
	$(Q)for u in heliosproxy helios-cp; do \
		$(UNIT_SUBST) deploy/systemd/$$u.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service.tmp && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service.tmp && \
		mv $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service || exit 1; \
	done
	$(Q)$(INSTALL_DATA) deploy/systemd/heliosproxy.sysusers $(DESTDIR)$(SYSUSERSDIR)/heliosproxy.conf
	$(Q)$(INSTALL_DATA) deploy/systemd/bpf-fastpath.conf $(DESTDIR)$(DOCDIR)/examples/
	$(Q)$(INSTALL_DATA) deploy/systemd/heliosproxy.toml.example $(DESTDIR)$(SYSCONFDIR)/heliosproxy/
# bash completion: the script helioctl prints (a helioctl without
# --completion installs none)
	$(Q)if $(REL_BIN)/helioctl --completion bash > build/helioctl.bash 2>/dev/null; then \
		$(INSTALL) -d $(DESTDIR)$(BASHCOMPDIR) && \
		$(INSTALL_DATA) build/helioctl.bash $(DESTDIR)$(BASHCOMPDIR)/helioctl; \
	fi; rm -f build/helioctl.bash
	@echo "installed under $(DESTDIR)$(PREFIX); next (as root, without DESTDIR):"
	@echo "  systemd-sysusers; systemctl daemon-reload"
	@echo "  cp $(SYSCONFDIR)/heliosproxy/heliosproxy.toml.example $(SYSCONFDIR)/heliosproxy/heliosproxy.toml"

install-strip:
	$(Q)$(MAKE) --no-print-directory INSTALL_PROGRAM='$(INSTALL) -m 0755 -s' install

# Removes what install put there; the operator's heliosproxy.toml (and the
# folder holding it) stays.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/heliosproxy $(DESTDIR)$(SBINDIR)/helios-cp \
		$(DESTDIR)$(BINDIR)/helioctl \
		$(DESTDIR)$(MANDIR)/man1/helioctl.1 $(DESTDIR)$(MANDIR)/man5/heliosproxy.toml.5 \
		$(DESTDIR)$(MANDIR)/man8/heliosproxy.8 $(DESTDIR)$(MANDIR)/man8/helios-cp.8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/heliosproxy.service $(DESTDIR)$(SYSTEMDUNITDIR)/helios-cp.service \
		$(DESTDIR)$(SYSUSERSDIR)/heliosproxy.conf \
		$(DESTDIR)$(DOCDIR)/examples/bpf-fastpath.conf \
		$(DESTDIR)$(SYSCONFDIR)/heliosproxy/heliosproxy.toml.example \
		$(DESTDIR)$(BASHCOMPDIR)/helioctl
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/heliosproxy 2>/dev/null || true
