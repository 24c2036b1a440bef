/* conn.h: blocking request/reply over the daemon's Unix socket: connect,
 * send a frame with descriptors, receive a frame, with timeouts, and the
 * exchanges every client makes (HELLO, SESSION_CREATE, SESSION_END).
 * libtraced's client and the `traced` CLI (run, status, stop) share it:
 * the one libclient header besides options.h that cli/ includes.  It uses
 * nothing else of libclient, so it never includes client.h. */
#ifndef TRACED_CONN_H
#define TRACED_CONN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "proto/traced_proto.h"
#include "traced.h"

#define TR_CONN_TIMEOUT_MS 10000

/* Room for the reason tr_conn_connect() gives for a refusal. */
#define TR_CONN_WHY_MAX 512

/* Connects to the daemon's socket; returns the descriptor (close-on-exec)
 * or a negative errno.  Nothing is sent: the caller says HELLO.  Before it
 * returns a connection it checks whom it reached (trust.h): the per-user
 * default socket (tr_sockpath_user()) only in a private directory of this
 * user, and only a daemon of this user or root (or, on another socket,
 * of its directory's owner).  A refusal is -EPERM with a one-line reason
 * in `why` (may be NULL); -ENOENT for a socket whose directory does not
 * exist names that directory there; `why` is "" after any other
 * outcome. */
int tr_conn_connect(const char *path, char *why, size_t why_size);

/* Opens `path` to be a session's output: created 0666 (less the umask)
 * when missing, and NOT truncated: the daemon empties it when it accepts
 * the session (PROTOCOL.md, SESSION_CREATE), so a refused session leaves
 * an existing file as it was.  Only a regular file or /dev/null will do,
 * and the open never blocks: a FIFO without a reader is -ENXIO, any other
 * kind -EINVAL (the daemon would refuse it).  Returns the descriptor
 * (close-on-exec, blocking) or a negative errno. */
int tr_conn_open_output(const char *path);

/* Closes a connection or an output tr_conn_connect or tr_conn_open_output
 * returned (a descriptor on Unix, a handle on Windows). */
void tr_conn_close(int fd);

/* Sends one frame, all of it, with `nfds` descriptors attached.  Never
 * raises SIGPIPE.  Returns 0 or a negative errno (-ETIMEDOUT after
 * timeout_ms without progress). */
int tr_conn_send(int fd, uint16_t type, const void *payload, uint32_t len,
                 const int *fds, int nfds, int timeout_ms);

/* Receives one frame: its payload is unpacked into `out` (which the caller
 * must msgpack_unpacked_destroy).  ERROR frames are returned as
 * -code with their message copied into errmsg (may be NULL).  Returns the
 * frame type on success. */
int tr_conn_recv(int fd, msgpack_unpacked *out, int timeout_ms, char *errmsg,
                 size_t errmsg_size);

/* send + recv, checking the reply's type; returns 0 or a negative errno
 * (-EPROTO for an unexpected reply). */
int tr_conn_request(int fd, uint16_t type, const msgpack_sbuffer *payload,
                    const int *fds, int nfds, uint16_t reply_type,
                    msgpack_unpacked *reply, int timeout_ms, char *errmsg,
                    size_t errmsg_size);

/* HELLO for this process (pid, ppid, argv from /proc/self/cmdline, the
 * display name `name`, the clock) and its WELCOME, read into *welcome
 * when not NULL.  A producer passes its arena descriptor and size and says
 * whether it offers TSC timestamps; a control connection (`traced run`,
 * `traced status`) passes arena_fd -1.  NULL or "" for `name` means the
 * program's short name.  Returns 0 or a negative errno; the daemon's
 * refusal text goes to err (may be NULL). */
int tr_conn_hello(int fd, const char *name, int arena_fd, uint32_t arena_size,
                  bool tsc, tr_msg_welcome *welcome, char *err, size_t errsz);

/* A Python process that never joined the session (SESSION_SUMMARY
 * `unjoined`): its pid, its interpreter as the command named it, and its
 * arguments, cut to fit at an argument's end. */
typedef struct tr_summary_child {
  uint32_t pid;
  uint32_t argc;
  char path[512];
  char argv[512]; /* argc NUL-terminated strings back to back */
} tr_summary_child;

/* What a session's SESSION_SUMMARY says beyond traced_summary. */
typedef struct tr_summary_extra {
  uint64_t filtered;    /* calls --min-duration left out */
  uint64_t max_size;    /* the size bound the trace reached; 0: none */
  uint64_t cut_dropped; /* events dropped once it was cut short */
  int write_error;      /* errno of its first failed write; 0: none */
  bool unclosed;        /* its ending could not be written either */
  /* Python processes started by its members that never joined it, and
   * how many more there were (not listed). */
  tr_summary_child unjoined[TR_UNJOINED_MAX];
  uint32_t nunjoined;
  uint64_t unjoined_omitted;
} tr_summary_extra;

/* SESSION_CREATE for an output named `path` (for display; its extension
 * picks the format, tr_conn_format_for_path), passing the output
 * descriptor, with min_duration_ns (calls shorter than this are not
 * written; 0: none) and max_size (the trace's size bound in bytes; 0:
 * none); the SESSION_CREATED token goes to `token`.  Returns 0
 * or a negative errno (-EPROTO for a reply without a proper token); the
 * daemon's refusal text goes to err (may be NULL). */
int tr_conn_session_create(int fd, const char *path, int out_fd,
                           uint64_t min_duration_ns, uint64_t max_size,
                           char token[TR_TOKEN_HEX_LEN + 1], char *err,
                           size_t errsz);

/* Ends the creator's session: SESSION_END, then its SESSION_SUMMARY into
 * *out (absent keys read as 0).  When the daemon already ended it (`traced
 * stop`, SIGTERM: it sends the creator its summary, then closes the
 * connection), the summary waiting on the socket is taken instead and
 * *stopped is set.  *extra (when not NULL) gets what traced_summary has
 * no room for without changing its size, which would break binary
 * compatibility.  Returns 0 or a negative errno. */
int tr_conn_end_session(int fd, traced_summary *out, tr_summary_extra *extra,
                        bool *stopped, int timeout_ms);

/* The one line saying why a trace ended short of its events ("stopped at
 * --max-size 100M: 5120 events dropped", "write failed: No space left on
 * device: ..."), without a newline, into buf; "" when it did not. */
const char *tr_summary_cut_text(const tr_summary_extra *x, char *buf,
                                size_t size);

/* The i-th line (from 0) naming the Python processes that never joined
 * the session, without "traced: " and the newline, into buf: one per
 * listed process ("pid N never joined the session: PATH (ARGV...) ran
 * without traced; install traced in that interpreter: PATH -m pip install
 * traced", its arguments shortened), then one counting those not listed.
 * Returns false (buf "") past the last line. */
bool tr_summary_unjoined_text(const tr_summary_extra *x, uint32_t i, char *buf,
                              size_t size);

/* A process this one started (pid != getpid()) or an exec it is about to
 * make (pid == getpid(); failed: that exec failed), as PROCESS_INFO's
 * `child` announces it: the program's path and argv (argc strings), cut
 * to the protocol's bounds (TR_CHILD_*).  The packer's strings point into
 * `buf`, which must outlive the packing. */
typedef struct tr_conn_child_buf {
  char path[TR_CHILD_PATH_MAX];
  char argv[TR_CHILD_ARGV_MAX];
} tr_conn_child_buf;
void tr_conn_child_make(tr_msg_child *c, tr_conn_child_buf *buf, uint32_t pid,
                        const char *path, const char *const *argv, size_t argc,
                        bool failed);

/* The SESSION_CREATE format for an output named `path`, by its extension
 * (ASCII case ignored): ".json.gz" is gzip-compressed JSON, ".pftrace" and
 * ".perfetto-trace" a Perfetto protobuf trace, anything else (no
 * extension, /dev/null, ".json") JSON. */
const char *tr_conn_format_for_path(const char *path);

#endif
