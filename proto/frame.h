/* frame.h: encoding and decoding of the length-prefixed frames that carry
 * every control message between clients and the daemon. */
#ifndef TRACED_FRAME_H
#define TRACED_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "traced_proto.h"

/* Writes the 8-byte header for a frame of `len` payload bytes. */
void tr_frame_hdr_encode(uint8_t out[sizeof(tr_frame_hdr)], uint16_t type,
                         uint32_t len);

/* Looks at the bytes received so far.  Returns the size of the complete
 * first frame (header + payload) and fills *hdr, 0 if more bytes are needed,
 * -EMSGSIZE if the header announces more than TR_FRAME_MAX_PAYLOAD, or
 * -EPROTO if the header is malformed (non-zero flags, type 0). */
int64_t tr_frame_parse(const uint8_t *buf, size_t len, tr_frame_hdr *hdr);

/* Human-readable name of a message type, for logs ("HELLO", "?"). */
const char *tr_msg_name(uint16_t type);

#endif
