/* runproc_unix.c: runproc.h on Unix: fork, exec, waitpid, and signals
 * forwarded to the child. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/traced_proto.h"
#include "runproc.h"

static volatile sig_atomic_t g_child = 0;

static void forward_signal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

static int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

int tr_runproc_run(char **argv, const char *socket, const char *token) {
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "traced: cannot fork: %s\n", strerror(errno));
    return 127;
  }
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    if (token != NULL) {
      char pid[24];
      snprintf(pid, sizeof(pid), "%d", (int)getpid());
      setenv(TR_ENV_ROOT_PID, pid, 1);
      setenv(TR_ENV_SESSION, token, 1);
      setenv(TR_ENV_SOCKET, socket, 1);
    }
    unsetenv(TR_ENV_OUTPUT);
    execvp(argv[0], argv);
    fprintf(stderr, "traced: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  g_child = pid;
  /* Like a shell: the terminal's ^C and ^\ go to the child's process
   * group; we keep waiting for it.  TERM and HUP are passed on. */
  struct sigaction ign = {.sa_handler = SIG_IGN},
                   fwd = {.sa_handler = forward_signal};
  sigaction(SIGINT, &ign, NULL);
  sigaction(SIGQUIT, &ign, NULL);
  sigaction(SIGTERM, &fwd, NULL);
  sigaction(SIGHUP, &fwd, NULL);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      status = 0;
      break;
    }
  }
  g_child = 0;
  return exit_code(status);
}

int tr_runproc_quiet(char **argv) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
    }
    unsetenv(TR_ENV_SESSION);
    unsetenv(TR_ENV_OUTPUT);
    execvp(argv[0], argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return exit_code(status);
}

int tr_runproc_autostart(const char *socket, const char *idle_s) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n < 0) return -errno;
  self[n] = '\0';
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
    }
    execl(self, self, "serve", "--daemon", "--idle-exit", idle_s, "--socket",
          socket, (char *)NULL);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -errno;
  return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -ECHILD;
}

bool tr_runproc_private_place(const char *socket) {
  if (strcmp(socket, TR_SYSTEM_SOCKET) == 0) return false;
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", socket);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) return true; /* in the current directory */
  if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  struct stat st;
  return stat(dir, &st) < 0 || st.st_uid == getuid();
}

bool tr_runproc_find(const char *name, char *out, size_t size) {
  if (strchr(name, '/') != NULL) {
    snprintf(out, size, "%s", name);
    return access(out, X_OK) == 0;
  }
  const char *path = getenv("PATH");
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path != '\0') {
    size_t len = strcspn(path, ":");
    int n = snprintf(out, size, "%.*s/%s", (int)len, len ? path : ".", name);
    struct stat st;
    if (n > 0 && (size_t)n < size && stat(out, &st) == 0 &&
        S_ISREG(st.st_mode) && access(out, X_OK) == 0)
      return true;
    path += len;
    if (*path == ':') path++;
  }
  return false;
}

int tr_path_absolute(const char *path, char *out, size_t size) {
  int n;
  if (path[0] == '/') {
    n = snprintf(out, size, "%s", path);
  } else {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) cwd[0] = '\0';
    n = snprintf(out, size, "%s/%s", cwd, path);
  }
  return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

bool tr_runproc_output_deleted(int h) {
  struct stat st;
  return fstat(h, &st) == 0 && st.st_nlink == 0;
}
