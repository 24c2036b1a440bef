/* serveos.h: `traced serve`'s side of the operating system, one file per
 * system (serveos_unix.c: groups, socket activation, the socket's private
 * directory, fork/setsid, uv_signal's SIGINT and SIGTERM; serveos_win.c:
 * a detached copy of the process, console control events): what happens
 * before the daemon listens and how it is told to stop. */
#ifndef TRACED_CLI_SERVEOS_H
#define TRACED_CLI_SERVEOS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/platform.h"

/* The group `--group NAME` names; prints why and returns -1 when there is
 * none (or, on Windows, where a pipe admits users, not groups). */
int tr_serveos_group(const char *name, gid_t *out);

/* The listening socket a service manager passed (systemd's socket
 * activation), -1 when none was, or -EINVAL (said why) when what was
 * passed is unusable.  Windows: always -1. */
int tr_serveos_activated(void);

/* Before anything is opened: the process no longer dies of writes to a
 * closed socket or pipe, and, when `make_dir`, the per-user socket's
 * private directory exists (a pipe has none).  Returns 0 or -1 after
 * saying why. */
int tr_serveos_prepare(const char *socket_path, bool make_dir);

/* Where `--daemon` logs without --log-file: beside the socket (its path
 * and ".log"); a pipe is no file, so on Windows the temporary directory's
 * traced-<pipe name>.log. */
void tr_serveos_default_log(const char *socket_path, char *buf, size_t size);

/* Appends the log to `path` from now on (stderr is moved there), never
 * through a symbolic link.  Returns 0 or -1 after saying why. */
int tr_serveos_open_log(const char *path);

/* Detaches from the terminal with stderr appended to log_path.  The
 * original process waits until the daemon reports its status with
 * tr_serveos_ready ('0' listening, 'A' another daemon serves the socket,
 * anything else, or nothing, a failure described in the log), says so,
 * and exits without returning.  Returns, in the daemon, what to pass to
 * tr_serveos_ready. */
int tr_serveos_daemonize(const char *log_path, const char *socket_path);

/* In the process waiting in tr_serveos_daemonize (serveos.c, both
 * systems): says what the daemon reported (`got` false: nothing, it died
 * first) and exits, 0 when it listens. */
_Noreturn void tr_serveos_waited(bool got, char status, const char *log_path,
                                 const char *socket_path);

/* Reports `status` to the process waiting in tr_serveos_daemonize (none
 * when `ready` is -1) and lets it go. */
void tr_serveos_ready(int ready, char status);

/* The requests to stop the daemon gracefully, as libuv's signal numbers
 * with their names for the log, ended by {0, NULL}: SIGINT and SIGTERM on
 * Unix; ^C (SIGINT), ^Break (SIGBREAK) and the console closing (SIGHUP)
 * on Windows (Windows has no SIGTERM to catch: TerminateProcess cannot
 * be, and `traced stop` is the way).  serve.c watches them. */
#define TR_SERVEOS_NSIGNALS 3
typedef struct tr_serveos_signal {
  int signum;
  const char *name;
} tr_serveos_signal;
extern const tr_serveos_signal tr_serveos_stop_signals[TR_SERVEOS_NSIGNALS + 1];

#endif
