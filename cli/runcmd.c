/* runcmd.c: the command `traced run` starts (a command, NAME.py, or -m
 * MODULE with traced's own interpreter) and the one line that explains a
 * session no process joined. */
#include "runcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "runproc.h"

const char *tr_runcmd_python(void) {
  const char *p = getenv(TR_ENV_PYTHON);
  return (p != NULL && *p != '\0') ? p : "python3";
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

char **tr_runcmd_build(int argc, char **argv, const char *module) {
  bool script = module == NULL && argc > 0 && ends_with(argv[0], ".py");
  int extra = module != NULL ? 3 : script ? 1 : 0;
  char **cmd = calloc((size_t)argc + (size_t)extra + 1, sizeof(*cmd));
  if (cmd == NULL) return NULL;
  int n = 0;
  if (extra > 0) cmd[n++] = (char *)tr_runcmd_python();
  if (module != NULL) {
    cmd[n++] = "-m";
    cmd[n++] = (char *)module;
  }
  for (int i = 0; i < argc; i++) cmd[n++] = argv[i];
  cmd[n] = NULL;
  return cmd;
}

static bool is_python_name(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  return strncmp(base, "python", 6) == 0;
}

/* The Python interpreter a program's "#!" line names (through
 * /usr/bin/env too), into out[size]; false if none. */
static bool shebang_python(const char *program, char *out, size_t size) {
  int fd = open(program, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char line[256];
  ssize_t n = read(fd, line, sizeof(line) - 1);
  close(fd);
  if (n < 3 || line[0] != '#' || line[1] != '!') return false;
  line[n] = '\0';
  line[strcspn(line, "\n")] = '\0';
  char *save = NULL;
  char *word = strtok_r(line + 2, " \t", &save);
  if (word != NULL && ends_with(word, "/env")) {
    word = strtok_r(NULL, " \t", &save);
    while (word != NULL && word[0] == '-') word = strtok_r(NULL, " \t", &save);
    if (word == NULL || !is_python_name(word)) return false;
    return tr_runproc_find(word, out, size);
  }
  if (word == NULL || !is_python_name(word)) return false;
  snprintf(out, size, "%s", word);
  return true;
}

/* Whether `python -c "import traced"` succeeds (outside any session);
 * true when that cannot be told. */
static bool imports_traced(const char *python) {
  char *argv[] = {(char *)python, "-c", "import traced", NULL};
  int rc = tr_runproc_quiet(argv);
  return rc <= 0;
}

void tr_runcmd_explain_empty(char **cmd, FILE *err) {
  const char *mine = tr_runcmd_python();
  char program[PATH_MAX], python[PATH_MAX];
  /* Not found: the child has said so ("cannot run"). */
  if (!tr_runproc_find(cmd[0], program, sizeof(program))) return;
  bool py = false;
  if (is_python_name(program)) {
    snprintf(python, sizeof(python), "%s", program);
    py = true;
  } else {
    py = shebang_python(program, python, sizeof(python));
  }
  if (py && !imports_traced(python)) {
    fprintf(err,
            "traced: no process joined the session: %s cannot import the "
            "traced package; install traced there (pip install traced) or "
            "run the script with %s (traced run script.py, traced run -m "
            "module)\n",
            python, mine);
  } else if (py) {
    fprintf(err,
            "traced: no process joined the session: %s has the traced "
            "package but recorded nothing (did it exit before its first "
            "call, or run with -S or -I?)\n",
            python);
  } else {
    fprintf(err,
            "traced: no process joined the session: %s is not a Python "
            "interpreter and started none that has the traced package; "
            "traced records Python processes (run a script with traced run "
            "script.py, or use the interpreter traced is installed in: "
            "%s)\n",
            cmd[0], mine);
  }
}

void tr_runcmd_size_note(unsigned long long bytes, unsigned long long events,
                         const char *path, FILE *err) {
  unsigned long long limit = TR_SIZE_NOTE_BYTES;
  const char *env = getenv("TRACED_SIZE_NOTE");
  if (env != NULL && *env != '\0') {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(env, &end, 10);
    if (errno == 0 && *end == '\0') limit = v;
  }
  if (bytes < limit || bytes == 0) return;
  size_t n = strlen(path);
  bool pftrace = (n >= 8 && strcasecmp(path + n - 8, ".pftrace") == 0) ||
                 (n >= 15 && strcasecmp(path + n - 15, ".perfetto-trace") == 0);
  double mb = (double)bytes / 1e6;
  fprintf(err,
          "traced: the trace is big: %.*f %s, %llu bytes per event; %s"
          "--min-duration DUR, --exclude-files, --include-files or "
          "--max-depth leave calls out\n",
          mb >= 1000 ? 1 : 0, mb >= 1000 ? mb / 1000 : mb,
          mb >= 1000 ? "GB" : "MB", events ? bytes / events : 0ull,
          pftrace ? "" : "-o NAME.pftrace is about 4.5x smaller at no cost; ");
}
