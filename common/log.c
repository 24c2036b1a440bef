/* log.c: the daemon's one logging function, timestamped lines on stderr. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = TR_LOG_INFO;

void tr_log_set_level(int level) { log_level = level; }

int tr_log_level(void) { return log_level; }

static const char *level_name(int level) {
  switch (level) {
    case TR_LOG_ERROR:
      return "ERROR";
    case TR_LOG_WARN:
      return "WARN";
    case TR_LOG_INFO:
      return "INFO";
    default:
      return "DEBUG";
  }
}

void tr_log(int level, const char *fmt, ...) {
  if (level > log_level) return;
  int saved_errno = errno;
  char line[2048];
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  tr_gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
  int k = snprintf(line + n, sizeof(line) - n, ".%03ldZ traced[%ld] %s ",
                   now.tv_nsec / 1000000L, (long)getpid(), level_name(level));
  if (k > 0) n += (size_t)k;
  va_list ap;
  va_start(ap, fmt);
  k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  va_end(ap);
  if (k > 0) n += (size_t)k;
  /* Keep room for the newline even when the message was truncated. */
  if (n > sizeof(line) - 1) n = sizeof(line) - 1;
  line[n++] = '\n';
  const char *p = line;
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
  errno = saved_errno;
}

const char *tr_log_peer(char buf[TR_LOG_PEER_MAX], pid_t pid, uid_t uid,
                        uint64_t epoch) {
  if (epoch != 0)
    snprintf(buf, TR_LOG_PEER_MAX, "pid=%ld uid=%lu session=%llu", (long)pid,
             (unsigned long)uid, (unsigned long long)epoch);
  else
    snprintf(buf, TR_LOG_PEER_MAX, "pid=%ld uid=%lu", (long)pid,
             (unsigned long)uid);
  return buf;
}

const char *tr_log_q(char buf[TR_LOG_VALUE_MAX], const char *s) {
  bool plain = s[0] != '\0';
  for (const char *c = s; *c != '\0' && plain; c++)
    plain = (unsigned char)*c > ' ' && *c != '"' && *c != '\\' && *c != '=' &&
            *c != 0x7f;
  if (plain) {
    snprintf(buf, TR_LOG_VALUE_MAX, "%s", s);
    return buf;
  }
  size_t n = 0;
  buf[n++] = '"';
  /* Room kept for the longest escape (4), the closing quote and NUL. */
  for (const char *c = s; *c != '\0' && n < TR_LOG_VALUE_MAX - 6; c++) {
    unsigned char u = (unsigned char)*c;
    if (u == '"' || u == '\\') {
      buf[n++] = '\\';
      buf[n++] = (char)u;
    } else if (u < ' ' || u == 0x7f) {
      n += (size_t)snprintf(buf + n, 5, "\\x%02x", u);
    } else {
      buf[n++] = (char)u;
    }
  }
  buf[n++] = '"';
  buf[n] = '\0';
  return buf;
}
