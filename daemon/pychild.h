/* pychild.h: the Python interpreters a session's processes started
 * (PROCESS_INFO `child`), so that those that never joined the session --
 * an interpreter without the traced package, one run with -S -- can be
 * named in its SESSION_SUMMARY (`unjoined`) instead of being missing from
 * the trace without a word.
 *
 * A child joins when a process with its pid joins the session.  An exec
 * keeps its pid: a process announcing itself (the announcer's pid) must
 * join again after the announcement, since it had joined before it.
 * Everything here runs on the event-loop thread. */
#ifndef TRACED_PYCHILD_H
#define TRACED_PYCHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

/* Children remembered per session; when full, those that joined make room,
 * and a child that finds no room is not checked (counted). */
#define TR_PYCHILD_MAX 1024u

typedef struct tr_pychild {
  uint32_t pid;
  bool joined;
  bool shell; /* under a shell: a process whose parent it is joins too */
  char *path; /* the interpreter as the command named it (for `sh -c
                 'python3 x.py'`: python3), NUL-terminated, owned */
  char *argv; /* argc NUL-terminated strings back to back, owned */
  size_t argv_len;
  uint32_t argc;
} tr_pychild;

typedef struct tr_pychildren {
  tr_pychild *v;
  uint32_t n, cap;
  uint64_t unchecked; /* Python children not remembered: no room */
} tr_pychildren;

void tr_pychildren_init(tr_pychildren *l);
void tr_pychildren_free(tr_pychildren *l);

/* Whether `c` starts a Python interpreter: the program's base name is
 * python, python3, python3.12, pythonw, python3.13t, pypy3 (a venv's
 * `python` is a symlink of that name); through `env [-opts] [VAR=x]
 * python3 ...`; or `sh -c 'python3 x.py'`, a lone simple command.  *interp
 * (may be NULL) gets the interpreter as the command named it; *shell (may
 * be NULL) says it runs under a shell, which may exec it (bash: it keeps
 * the announced pid) or fork it (dash: its parent is the announced pid). */
bool tr_pychild_is_python(const tr_msg_child *c, tr_msg_str *interp,
                          bool *shell);

/* What the session knew of a child's pid when its announcement arrived:
 * a process with that pid joined (pid_joined), a member's parent is that
 * pid (child_joined). */
typedef struct tr_pychild_seen {
  bool pid_joined;
  bool child_joined;
} tr_pychild_seen;

/* Handles one announcement from the process `announcer_pid`: a child
 * that is not Python is ignored; a failed exec takes back that pid's
 * entry; otherwise the child is remembered (an entry of the same pid is
 * replaced), joined already when `seen` says so (pid_joined never counts
 * for an exec, pid == announcer_pid, which had joined before;
 * child_joined counts under a shell).  Returns 0, or -ENOMEM (not
 * remembered, counted in `unchecked`). */
int tr_pychildren_announce(tr_pychildren *l, const tr_msg_child *c,
                           uint32_t announcer_pid, tr_pychild_seen seen);

/* The process pid, whose parent is ppid, joined the session. */
void tr_pychildren_joined(tr_pychildren *l, uint32_t pid, uint32_t ppid);

/* The first `max` children that never joined, in the order they were
 * announced, into out[] as tr_msg_child values borrowing l's strings
 * (packing fields); returns how many, and the rest in *omitted. */
uint32_t tr_pychildren_unjoined(const tr_pychildren *l, tr_msg_child *out,
                                uint32_t max, uint64_t *omitted);

#endif
