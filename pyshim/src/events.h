/* events.h: the custom-event functions of traced._traced (events.c). */
#ifndef TRACED_EVENTS_H
#define TRACED_EVENTS_H

#include "shim.h"

/* instant, counter, span_begin, span_end, set_thread_name. */
extern PyMethodDef tr_event_methods[];

#endif
