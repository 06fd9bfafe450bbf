/*
 * The internal request seam; see ireq.h. Holds only the implementation
 * conn/ installs: no I/O here.
 */
#include "dataplane/pipeline/ireq.h"

#include <errno.h>

static const struct ireq_ops *ops;

void ireq_install(const struct ireq_ops *o)
{
	ops = o;
}

int ireq_submit(const struct ireq *rq)
{
	if (!ops || !ops->submit)
		return -ENOSYS;
	if (!rq || !rq->database || !rq->user || !rq->sql || !rq->done)
		return -EINVAL;
	return ops->submit(rq);
}
