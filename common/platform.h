/* platform.h: the few POSIX names shared code uses that Windows (mingw-w64)
 * lacks or spells differently, so that code itself stays free of #ifdefs.
 * Only names with the same meaning on both systems belong here; behaviour
 * that differs (sockets, pipes, shared memory) lives behind the transport
 * seam in libclient/ and daemon/. */
#ifndef TRACED_PLATFORM_H
#define TRACED_PLATFORM_H

#include <sys/types.h>
#include <time.h>

#ifdef _WIN32
/* Windows names users by SID, not by number; the daemon's logs and
 * per-user limits keep a number (docs/windows.md). */
typedef unsigned int uid_t;
typedef unsigned int gid_t;

/* gmtime_r's Windows spelling takes its arguments the other way round and
 * returns an errno value. */
static inline struct tm *tr_gmtime_r(const time_t *t, struct tm *out) {
  return gmtime_s(out, t) == 0 ? out : NULL;
}
#else
#define tr_gmtime_r gmtime_r
#endif

#endif
