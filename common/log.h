/* log.h: the daemon's one logging function, one line per call on stderr.
 *
 * Every message is a list of key=value pairs, starting with event=<what
 * happened> (docs/service.md lists them): lines about a peer carry its
 * kernel pid and uid and its session's epoch, refusals and failures carry
 * reason="...".  Values with spaces, quotes or '=' are quoted with
 * tr_log_q(), so `grep event=refuse` and a key=value parser both work. */
#ifndef TRACED_LOG_H
#define TRACED_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "platform.h"

enum tr_log_level {
  TR_LOG_ERROR = 0,
  TR_LOG_WARN = 1,
  TR_LOG_INFO = 2,
  TR_LOG_DEBUG = 3,
};

/* Lines above this level are not written (default TR_LOG_INFO).  Set once
 * at start-up, before the event loop runs. */
void tr_log_set_level(int level);
int tr_log_level(void);

/* Writes "<ISO-8601 UTC time> traced[<pid>] <LEVEL> <message>\n" to stderr
 * with one write(2), so lines of concurrent writers never interleave.
 * Messages longer than a line buffer (2 KiB) are truncated.  The message
 * should say what failed, for whom and why. */
void tr_log(int level, const char *fmt, ...)
    __attribute__((format(TR_PRINTF_FORMAT, 2, 3)));

/* Formats the peer prefix every per-connection line starts with:
 * "pid=<kernel pid> uid=<uid>" and, when epoch is non-zero,
 * " session=<epoch>".  Sessions are named by epoch, never by token: the
 * token is a secret.  Returns buf. */
#define TR_LOG_PEER_MAX 64
const char *tr_log_peer(char buf[TR_LOG_PEER_MAX], pid_t pid, uid_t uid,
                        uint64_t epoch);

/* Quotes `s` for a log line: returned as is when it is non-empty and has no
 * space, quote, backslash, '=' or control character; otherwise in double
 * quotes with '"' and '\\' escaped and control bytes written as \\xNN.
 * Truncated to fit the buffer.  Returns buf. */
#define TR_LOG_VALUE_MAX 512
const char *tr_log_q(char buf[TR_LOG_VALUE_MAX], const char *s);

#endif
