/* nest.h: placing each call of a thread in its call tree, so that its
 * self and total times count what cProfile counts (nest.c). */
#ifndef TRACED_NEST_H
#define TRACED_NEST_H

#include <stdbool.h>
#include <stdint.h>

#include "report_data.h"

/* Counts the call [s, e] of function fn on thread t (of r) and nests it
 * among the thread's other calls.  Returns 0 or -ENOMEM. */
int tr_nest_call(tr_report *r, thread *t, uint32_t fn, int64_t s, int64_t e,
                 bool unfinished);

/* Forgets the thread's pending calls (its nesting starts afresh). */
void tr_nest_reset(thread *t);

#endif
