/* pychild.c: the Python interpreters a session's processes started, and
 * which of them never joined it (pychild.h). */
#include "pychild.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void tr_pychildren_init(tr_pychildren *l) { memset(l, 0, sizeof(*l)); }

static void child_free(tr_pychild *c) {
  free(c->path);
  free(c->argv);
  c->path = c->argv = NULL;
}

void tr_pychildren_free(tr_pychildren *l) {
  for (uint32_t i = 0; i < l->n; i++) child_free(&l->v[i]);
  free(l->v);
  tr_pychildren_init(l);
}

/* ---- is it Python? ------------------------------------------------------ */

static tr_msg_str base_name(tr_msg_str s) {
  for (size_t i = s.len; i > 0; i--) {
    if (s.ptr[i - 1] == '/') {
      tr_msg_str b = {s.ptr + i, s.len - i};
      return b;
    }
  }
  return s;
}

static bool starts(tr_msg_str s, const char *lit, size_t *at) {
  size_t n = strlen(lit);
  if (s.len < n || memcmp(s.ptr, lit, n) != 0) return false;
  *at = n;
  return true;
}

static bool is(tr_msg_str s, const char *lit) {
  return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* (python|pypy)([0-9]+(.[0-9]+)*)?[tdmw]{0,2}(.exe)?, the last component of a
 * path: python, python3, python3.12, pythonw, python3.13t, pypy3.  Not
 * python3-config and the like, which are not interpreters. */
static bool python_name(tr_msg_str path) {
  tr_msg_str b = base_name(path);
  size_t i;
  if (!starts(b, "python", &i) && !starts(b, "pypy", &i)) return false;
  /* [0-9]+(\.[0-9]+)*: a dot only between digits */
  while (i < b.len && b.ptr[i] >= '0' && b.ptr[i] <= '9') {
    i++;
    if (i + 1 < b.len && b.ptr[i] == '.' && b.ptr[i + 1] >= '0' &&
        b.ptr[i + 1] <= '9')
      i++;
  }
  for (int k = 0; k < 2 && i < b.len && strchr("tdmw", b.ptr[i]) != NULL; k++)
    i++;
  if (b.len - i == 4 && memcmp(b.ptr + i, ".exe", 4) == 0) i += 4;
  return i == b.len;
}

/* The first word of a lone simple shell command (after VAR=value
 * assignments and `exec`), or an absent string when the command is more
 * than one (a list, a pipeline, a subshell, an expansion that could start
 * something else): a shell forks for those, and the interpreter then has
 * another pid than the one announced. */
static tr_msg_str lone_command(tr_msg_str cmd) {
  tr_msg_str none = {NULL, 0};
  char quote = 0;
  for (size_t i = 0; i < cmd.len; i++) {
    char ch = cmd.ptr[i];
    if (ch == '\0') return none;
    if (quote == '\'') {
      if (ch == '\'') quote = 0;
    } else if (quote == '"') {
      if (ch == '"') quote = 0;
      if (ch == '$' || ch == '`' || ch == '\\') return none;
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
    } else if (strchr(";&|<>()$`\n\\", ch) != NULL) {
      return none;
    }
  }
  if (quote != 0) return none;
  size_t i = 0;
  for (;;) {
    while (i < cmd.len && (cmd.ptr[i] == ' ' || cmd.ptr[i] == '\t')) i++;
    size_t start = i;
    while (i < cmd.len && cmd.ptr[i] != ' ' && cmd.ptr[i] != '\t') i++;
    tr_msg_str w = {cmd.ptr + start, i - start};
    if (w.len == 0) return none;
    if (memchr(w.ptr, '=', w.len) != NULL || is(w, "exec")) continue;
    return w;
  }
}

bool tr_pychild_is_python(const tr_msg_child *c, tr_msg_str *interp,
                          bool *shell) {
  tr_msg_str found = {NULL, 0};
  bool under_shell = false;
  tr_msg_str b = base_name(c->path);
  if (python_name(c->path)) {
    found = c->path;
  } else if (is(b, "env")) {
    /* env [-i] [-u NAME] [VAR=value]... PROGRAM ARGS */
    for (uint32_t i = 1; i < c->argc; i++) {
      tr_msg_str a = tr_msg_child_arg(c, i);
      if (is(a, "-u") || is(a, "--unset") || is(a, "-C") || is(a, "--chdir")) {
        i++;
        continue;
      }
      if (a.len > 0 && (a.ptr[0] == '-' || memchr(a.ptr, '=', a.len) != NULL))
        continue;
      if (python_name(a)) found = a;
      break;
    }
  } else if ((is(b, "sh") || is(b, "bash") || is(b, "dash") || is(b, "zsh") ||
              is(b, "ksh")) &&
             c->argc >= 3 && is(tr_msg_child_arg(c, 1), "-c")) {
    tr_msg_str w = lone_command(tr_msg_child_arg(c, 2));
    if (w.ptr != NULL && python_name(w)) found = w;
    under_shell = true;
  }
  if (interp != NULL) *interp = found;
  if (shell != NULL) *shell = under_shell;
  return found.ptr != NULL;
}

/* ---- the list ----------------------------------------------------------- */

/* Drops the children that joined; true if that made room. */
static bool compact(tr_pychildren *l) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < l->n; i++) {
    if (l->v[i].joined)
      child_free(&l->v[i]);
    else
      l->v[k++] = l->v[i];
  }
  bool room = k < l->n;
  l->n = k;
  return room;
}

static tr_pychild *find(tr_pychildren *l, uint32_t pid) {
  for (uint32_t i = l->n; i > 0; i--)
    if (l->v[i - 1].pid == pid) return &l->v[i - 1];
  return NULL;
}

static tr_pychild *slot_for(tr_pychildren *l, uint32_t pid) {
  tr_pychild *c = find(l, pid);
  if (c != NULL) {
    child_free(c);
    return c;
  }
  if (l->n == TR_PYCHILD_MAX && !compact(l)) return NULL;
  if (l->n == l->cap) {
    uint32_t cap = l->cap ? l->cap * 2 : 8;
    if (cap > TR_PYCHILD_MAX) cap = TR_PYCHILD_MAX;
    tr_pychild *v = realloc(l->v, cap * sizeof(*v));
    if (v == NULL) return NULL;
    l->v = v;
    l->cap = cap;
  }
  c = &l->v[l->n++];
  memset(c, 0, sizeof(*c));
  return c;
}

int tr_pychildren_announce(tr_pychildren *l, const tr_msg_child *c,
                           uint32_t announcer_pid, tr_pychild_seen seen) {
  uint32_t pid = (uint32_t)c->pid;
  if (c->failed) {
    /* The exec did not happen: that pid still runs its old program (the
     * entry goes when room is needed). */
    tr_pychild *e = find(l, pid);
    if (e != NULL) e->joined = true;
    return 0;
  }
  tr_msg_str interp;
  bool shell;
  if (!tr_pychild_is_python(c, &interp, &shell)) return 0;
  size_t argv_len = 0;
  for (uint32_t i = 0; i < c->argc; i++)
    argv_len += tr_msg_child_arg(c, i).len + 1;
  char *path = malloc(interp.len + 1);
  char *argv = malloc(argv_len > 0 ? argv_len : 1);
  tr_pychild *e = path != NULL && argv != NULL ? slot_for(l, pid) : NULL;
  if (e == NULL) {
    free(path);
    free(argv);
    l->unchecked++;
    return -ENOMEM;
  }
  memcpy(path, interp.ptr, interp.len);
  path[interp.len] = '\0';
  size_t at = 0;
  for (uint32_t i = 0; i < c->argc; i++) {
    tr_msg_str a = tr_msg_child_arg(c, i);
    memcpy(argv + at, a.ptr, a.len);
    at += a.len;
    argv[at++] = '\0';
  }
  e->pid = pid;
  e->path = path;
  e->argv = argv;
  e->argv_len = argv_len;
  e->argc = c->argc;
  e->shell = shell;
  /* An exec keeps the pid, which joined before: only a later join
   * counts. */
  e->joined =
      (pid != announcer_pid && seen.pid_joined) || (shell && seen.child_joined);
  return 0;
}

void tr_pychildren_joined(tr_pychildren *l, uint32_t pid, uint32_t ppid) {
  for (uint32_t i = 0; i < l->n; i++)
    if (l->v[i].pid == pid || (l->v[i].shell && l->v[i].pid == ppid))
      l->v[i].joined = true;
}

uint32_t tr_pychildren_unjoined(const tr_pychildren *l, tr_msg_child *out,
                                uint32_t max, uint64_t *omitted) {
  uint32_t k = 0;
  *omitted = 0;
  for (uint32_t i = 0; i < l->n; i++) {
    const tr_pychild *c = &l->v[i];
    if (c->joined) continue;
    if (k == max) {
      (*omitted)++;
      continue;
    }
    memset(&out[k], 0, sizeof(out[k]));
    out[k].pid = c->pid;
    out[k].path = tr_msg_cstr(c->path);
    out[k].argv = c->argv;
    out[k].argv_len = c->argv_len;
    k++;
  }
  return k;
}
