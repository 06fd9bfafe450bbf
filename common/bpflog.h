/*
 * libbpf's messages for the whole process (the splice loader and the XDP
 * loader both use libbpf; its print callback is process-wide): they go to
 * the debug log, and the kernel's own reason for the last failed request
 * ("Kernel error message: ...") is kept per thread, for the caller's one
 * log line.
 */
#ifndef HELIOS_BPFLOG_H
#define HELIOS_BPFLOG_H

/* Installs the callback (idempotent, thread-safe). */
void bpflog_init(void);
/* This thread's last kernel error message since bpflog_clear(), or "". */
const char *bpflog_kernel_msg(void);
void bpflog_clear(void);

#endif
