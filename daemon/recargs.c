/* recargs.c: decoding ARGS payloads. */
#include "recargs.h"

#include <errno.h>
#include <string.h>

#include "proto/traced_proto.h"

/* The wire's types are the writers' types. */
_Static_assert((int)TR_ARGS_STR == (int)TR_ARG_STR &&
                   (int)TR_ARGS_INT == (int)TR_ARG_INT &&
                   (int)TR_ARGS_UINT == (int)TR_ARG_UINT &&
                   (int)TR_ARGS_DOUBLE == (int)TR_ARG_DOUBLE &&
                   (int)TR_ARGS_BOOL == (int)TR_ARG_BOOL,
               "ARGS entry types are tr_arg types");

int tr_args_decode(const uint8_t *p, uint32_t len, tr_arg *out, uint32_t max) {
  uint32_t at = 0, n = 0;
  while (at < len) {
    if (len - at < TR_ARGS_ENTRY_HDR) return -EINVAL;
    uint8_t type = p[at];
    uint32_t klen = p[at + 1];
    uint16_t vlen;
    memcpy(&vlen, p + at + 2, 2);
    at += TR_ARGS_ENTRY_HDR;
    if ((uint64_t)klen + vlen > len - at) return -EINVAL;
    const uint8_t *key = p + at, *val = p + at + klen;
    at += klen + vlen;
    tr_arg a;
    a.key = (const char *)key;
    a.klen = klen;
    a.type = type;
    switch (type) {
      case TR_ARGS_STR:
        a.v.s.ptr = (const char *)val;
        a.v.s.len = vlen;
        break;
      case TR_ARGS_INT:
        if (vlen != 8) return -EINVAL;
        memcpy(&a.v.i, val, 8);
        break;
      case TR_ARGS_UINT:
        if (vlen != 8) return -EINVAL;
        memcpy(&a.v.u, val, 8);
        break;
      case TR_ARGS_DOUBLE:
        if (vlen != 8) return -EINVAL;
        memcpy(&a.v.d, val, 8);
        break;
      case TR_ARGS_BOOL:
        if (vlen != 1 || val[0] > 1) return -EINVAL;
        a.v.b = val[0] != 0;
        break;
      default:
        return -EINVAL;
    }
    if (n < max) out[n++] = a;
  }
  return (int)n;
}
