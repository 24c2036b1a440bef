/* runopts.c: `traced run`'s recording flags, checked with the parser every
 * traced process uses and exported as TRACED_* environment variables. */
#include "runopts.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/platform.h"

size_t tr_runopts_longopts(struct option *opts, size_t used, size_t cap) {
  for (size_t i = 0; i < TR_OPTION_COUNT && used + 1 < cap; i++) {
    const tr_option *o = &tr_options[i];
    opts[used].name = o->flag;
    opts[used].has_arg =
        o->kind == TR_OPT_FLAG ? no_argument : required_argument;
    opts[used].flag = NULL;
    opts[used].val = TR_RUNOPT_BASE + (int)i;
    used++;
  }
  memset(&opts[used], 0, sizeof(opts[used]));
  return used;
}

/* Appends `path` (made absolute against the current directory, so that
 * processes that change directory agree) to the ':'-joined list *list. */
static int add_path(char **list, const char *path) {
  char cwd[PATH_MAX] = "";
  if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL) return -errno;
  size_t old = *list ? strlen(*list) : 0;
  size_t need = old + 1 + strlen(cwd) + 1 + strlen(path) + 1;
  char *n = realloc(*list, need);
  if (n == NULL) return -ENOMEM;
  snprintf(n + old, need - old, "%s%s%s%s", old ? ":" : "", cwd,
           cwd[0] ? "/" : "", path);
  *list = n;
  return 0;
}

int tr_runopts_take(tr_runopts *r, int val, const char *arg) {
  int i = val - TR_RUNOPT_BASE;
  if (i < 0 || i >= TR_OPTION_COUNT) return -EINVAL;
  const tr_option *o = &tr_options[i];
  r->given[i] = true;
  if (o->kind == TR_OPT_PATHS) {
    /* Each flag may itself hold a ':'-separated list, like the variable. */
    char *copy = strdup(arg);
    if (copy == NULL) return -ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *p = strtok_r(copy, ":", &save); p != NULL && rc == 0;
         p = strtok_r(NULL, ":", &save))
      rc = add_path(&r->paths[i], p);
    free(copy);
    if (rc == 0 && r->paths[i] == NULL) {
      fprintf(stderr, "traced run: --%s: no path given\n", o->flag);
      return -EINVAL;
    }
    return rc;
  }
  if (o->kind == TR_OPT_FLAG) {
    snprintf(r->value[i], sizeof(r->value[i]), "1");
    return 0;
  }
  uint64_t v;
  char why[160];
  if (tr_option_parse(o, arg, &v, why, sizeof(why)) < 0) {
    fprintf(stderr, "traced run: --%s %s: %s\n", o->flag, arg, why);
    return -EINVAL;
  }
  if (o->kind == TR_OPT_DURATION)
    snprintf(r->value[i], sizeof(r->value[i]), "%lluns", (unsigned long long)v);
  else if (o->kind == TR_OPT_CHOICE)
    tr_option_choice(o, v, r->value[i], sizeof(r->value[i]));
  else
    snprintf(r->value[i], sizeof(r->value[i]), "%llu", (unsigned long long)v);
  return 0;
}

void tr_runopts_apply(tr_runopts *r) {
  for (size_t i = 0; i < TR_OPTION_COUNT; i++) {
    const tr_option *o = &tr_options[i];
    if (r->given[i]) {
      setenv(o->env, o->kind == TR_OPT_PATHS ? r->paths[i] : r->value[i], 1);
      continue;
    }
    const char *s = getenv(o->env);
    if (s == NULL || *s == '\0' || o->kind == TR_OPT_PATHS) continue;
    uint64_t v;
    char why[160];
    if (tr_option_parse(o, s, &v, why, sizeof(why)) < 0) {
      fprintf(stderr, "traced: warning: ignoring %s=%s: %s\n", o->env, s, why);
      unsetenv(o->env);
    }
  }
  r->min_duration_ns = tr_option_env(TR_OPTION_MIN_DURATION);
  r->max_size = tr_option_env(TR_OPTION_MAX_SIZE);
}

void tr_runopts_usage(FILE *out) {
  for (size_t i = 0; i < TR_OPTION_COUNT; i++) {
    const tr_option *o = &tr_options[i];
    char left[48];
    snprintf(left, sizeof(left), "--%s%s%s", o->flag, o->metavar ? " " : "",
             o->metavar ? o->metavar : "");
    fprintf(out, "  %-21s %s\n  %-21s [%s]\n", left, o->help, "", o->env);
  }
}

void tr_runopts_free(tr_runopts *r) {
  for (size_t i = 0; i < TR_OPTION_COUNT; i++) free(r->paths[i]);
  memset(r, 0, sizeof(*r));
}
