/* tid.h: the calling thread's system id, the one a trace names it by. */
#ifndef TRACED_TESTS_NATIVE_TID_H
#define TRACED_TESTS_NATIVE_TID_H

#ifdef _WIN32
#include <windows.h>
static inline long native_tid(void) { return (long)GetCurrentThreadId(); }
#else
#include <sys/syscall.h>
#include <unistd.h>
static inline long native_tid(void) { return (long)syscall(SYS_gettid); }
#endif

#endif
