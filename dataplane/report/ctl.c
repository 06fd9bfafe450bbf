/*
 * The control-plane link's state, kept for reports and metrics (set by
 * cplink.c, read by stats.c and admin.c). The runtime controls the link
 * sets (pause, drain, routing) live below, in policy/control.c.
 */
#include "dataplane/report/stats.h"

#include <pthread.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct cp_link_state link_state;

void ctl_link_state(struct cp_link_state *out)
{
	pthread_mutex_lock(&mu);
	*out = link_state;
	pthread_mutex_unlock(&mu);
}

void ctl_link_update(const struct cp_link_state *in)
{
	pthread_mutex_lock(&mu);
	link_state = *in;
	pthread_mutex_unlock(&mu);
}
