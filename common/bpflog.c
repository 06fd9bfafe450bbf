/* libbpf's print callback (see bpflog.h). */
#include "common/bpflog.h"

#include "common/log.h"

#if HELIOS_HAVE_BPF
#include <bpf/libbpf.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __thread char kernel_msg[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	static const char tag[] = "Kernel error message: ";
	char line[512];

	if (level == LIBBPF_DEBUG)
		return 0;
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	while (n > 0 && (size_t)n < sizeof(line) && line[n - 1] == '\n')
		line[--n] = '\0';
	const char *k = strstr(line, tag);
	if (k)
		snprintf(kernel_msg, sizeof(kernel_msg), "%s", k + strlen(tag));
	log_debug("libbpf: %s", line);
	return 0;
}

static void install(void)
{
	libbpf_set_print(print);
}

void bpflog_init(void)
{
	pthread_once(&once, install);
}

const char *bpflog_kernel_msg(void)
{
	return kernel_msg;
}

void bpflog_clear(void)
{
	kernel_msg[0] = '\0';
}
#else
void bpflog_init(void)
{
}

const char *bpflog_kernel_msg(void)
{
	return "";
}

void bpflog_clear(void)
{
}
#endif
