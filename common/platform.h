/* platform.h: the few names shared code uses that one system lacks or
 * spells differently, so that code itself stays free of #ifdefs.  Only
 * names with the same meaning on both systems belong here; behaviour that
 * differs (sockets, pipes, shared memory, processes) lives behind the
 * seams in libclient/, daemon/ and cli/.  On Windows it brings the few
 * POSIX calls the portable code keeps (posix_win.h). */
#ifndef TRACED_PLATFORM_H
#define TRACED_PLATFORM_H

#include <stdlib.h>
#include <sys/types.h>
#include <time.h>

#ifdef _WIN32
#include "posix_win.h"

/* gmtime_r's Windows spelling takes its arguments the other way round and
 * returns an errno value. */
static inline struct tm *tr_gmtime_r(const time_t *t, struct tm *out) {
  return gmtime_s(out, t) == 0 ? out : NULL;
}

/* msvcrt has no aligned_alloc; its aligned blocks need their own free. */
static inline void *tr_aligned_alloc(size_t align, size_t size) {
  return _aligned_malloc(size, align);
}
static inline void tr_aligned_free(void *p) { _aligned_free(p); }
#else
#define tr_gmtime_r gmtime_r

static inline void *tr_aligned_alloc(size_t align, size_t size) {
  return aligned_alloc(align, size);
}
static inline void tr_aligned_free(void *p) { free(p); }
#endif

/* The format archetype of printf-like functions: mingw-w64's GCC takes
 * plain `printf` as msvcrt's, which lacks %zu and %llu; the C99 printf
 * traced is built with (__USE_MINGW_ANSI_STDIO) is GNU's. */
#ifdef __MINGW_PRINTF_FORMAT
#define TR_PRINTF_FORMAT __MINGW_PRINTF_FORMAT
#else
#define TR_PRINTF_FORMAT printf
#endif

#endif
