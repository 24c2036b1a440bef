/* conn.h: blocking request/reply over the daemon's Unix socket: connect,
 * send a frame with descriptors, receive a frame, with timeouts.  Shared by
 * libtraced's client and the `traced run` CLI. */
#ifndef TRACED_CONN_H
#define TRACED_CONN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/traced_proto.h"
#include "traced.h"

#define TR_CONN_TIMEOUT_MS 10000

/* Connects to the daemon's socket; returns the descriptor (close-on-exec)
 * or a negative errno. */
int tr_conn_connect(const char *path);

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

/* Ends the creator's session: SESSION_END, then its SESSION_SUMMARY into
 * *out.  When the daemon already ended it (`traced stop`, SIGTERM: it
 * sends the creator its summary, then closes the connection), the summary
 * waiting on the socket is taken instead and *stopped is set.  *filtered
 * (when not NULL) gets the calls --min-duration left out.  Returns 0 or a
 * negative errno. */
int tr_conn_end_session(int fd, traced_summary *out, uint64_t *filtered,
                        bool *stopped, int timeout_ms);

/* The SESSION_CREATE format for an output named `path`, by its extension
 * (ASCII case ignored): ".json.gz" is gzip-compressed JSON, ".pftrace" and
 * ".perfetto-trace" a Perfetto protobuf trace, anything else (no
 * extension, /dev/null, ".json") JSON. */
const char *tr_conn_format_for_path(const char *path);

/* Packs the SESSION_CREATE map for an output named `path`: the path (for
 * display only), the format its extension asks for, and min_duration_ns
 * (calls shorter than this are not written; 0: none). */
void tr_conn_pack_session_create(msgpack_packer *pk, const char *path,
                                 uint64_t min_duration_ns);

/* Copies the token of a SESSION_CREATED payload; -EPROTO if it is missing
 * or not TR_TOKEN_HEX_LEN characters. */
int tr_conn_read_token(const msgpack_object *map,
                       char token[TR_TOKEN_HEX_LEN + 1]);

/* Fills *out from a SESSION_SUMMARY payload (absent keys read as 0), and
 * *filtered (when not NULL) with the calls left out for being shorter
 * than the session's minimum duration: a count traced_summary has no room
 * for without changing its size, which would break binary compatibility. */
void tr_conn_read_summary(const msgpack_object *map, traced_summary *out,
                          uint64_t *filtered);

/* Packs the HELLO map (the caller adds nothing after it).  `name` is the
 * process's display name; NULL or "" means the program's short name. */
void tr_conn_pack_hello(msgpack_packer *pk, const char *role,
                        uint32_t arena_size, const char *name);

#endif
