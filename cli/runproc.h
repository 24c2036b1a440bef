/* runproc.h: `traced run`'s side of the operating system, one file per
 * system (runproc_unix.c: fork, exec, waitpid and signals; runproc_win.c:
 * CreateProcess, exit codes and console control events): the traced
 * command as a child process, a quiet helper process, starting a private
 * daemon, and the paths and files those need. */
#ifndef TRACED_CLI_RUNPROC_H
#define TRACED_CLI_RUNPROC_H

#include <stdbool.h>
#include <stddef.h>

/* Runs `argv` (NULL-ended; argv[0] looked up on PATH) as a child process
 * and waits for it.  With a `token`, the child gets TRACED_SESSION and
 * TRACED_SOCKET (`socket`), so that its Python processes join the
 * session, and TRACED_ROOT_PID, by which the first of them knows it is
 * the program's main process: the child's own pid (Unix), or on Windows,
 * where a pid is known only once the process runs, traced's own, which
 * the Python package compares with its parent's.  TRACED_OUTPUT is
 * removed either way.
 * While it runs, the terminal's interrupt goes to the child alone (like a
 * shell, traced keeps waiting); on Unix, SIGTERM and SIGHUP sent to traced
 * are passed on to it (Windows has no such requests to pass: the console's
 * events reach the child directly, and traced ignores them while it
 * waits).  Returns the exit status `traced run` exits with: the child's
 * own (on Windows all 32 bits, a crash's NTSTATUS included), 128+N when a
 * signal N killed it (Unix), 127 when argv[0] was not found and 126 when
 * it could not be run (both said on stderr). */
int tr_runproc_run(char **argv, const char *socket, const char *token);

/* Runs `argv` outside any session with no input or output and returns its
 * exit status, or -1 when it could not be run or waited for. */
int tr_runproc_quiet(char **argv);

/* Starts `traced serve --daemon --idle-exit idle_s --socket socket` from
 * this very executable and waits until it listens (the serving process
 * detaches; the one waited for exits once the daemon is ready).  Returns
 * 0 or a negative errno. */
int tr_runproc_autostart(const char *socket, const char *idle_s);

/* Whether a private daemon is this user's to start at `socket`: never on
 * the system socket, nor (Unix) in a directory another user owns.
 * docs/service.md. */
bool tr_runproc_private_place(const char *socket);

/* The program `name` as the system would find it to run it (PATH, and on
 * Windows its executable suffixes), into out[size]; false if not found. */
bool tr_runproc_find(const char *name, char *out, size_t size);

/* `path` made absolute against the current directory into out[size].
 * Returns 0, or -ENAMETOOLONG. */
int tr_path_absolute(const char *path, char *out, size_t size);

/* Whether the file behind the output handle `h` (tr_conn_open_output's)
 * has lost its last name: a trace written into it is lost. */
bool tr_runproc_output_deleted(int h);

#endif
