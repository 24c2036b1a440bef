/* mp.h: small helpers over msgpack-c for the control messages' maps, shared
 * by daemon and clients so both read and write keys the same way. */
#ifndef TRACED_MP_H
#define TRACED_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Packing: each writes one key (a str) followed by its value. */
void tr_mp_kv_str(msgpack_packer *pk, const char *key, const char *val);
void tr_mp_kv_strn(msgpack_packer *pk, const char *key, const char *val,
                   size_t n);
void tr_mp_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);
void tr_mp_kv_i64(msgpack_packer *pk, const char *key, int64_t val);
void tr_mp_kv_bool(msgpack_packer *pk, const char *key, bool val);
void tr_mp_str(msgpack_packer *pk, const char *s);

/* Reading.  `map` must be a MSGPACK_OBJECT_MAP (anything else finds
 * nothing).  Each getter returns 0, -ENOENT when the key is absent, or
 * -EINVAL when it holds the wrong type.  Strings are borrowed from the
 * unpacked zone and are not NUL-terminated. */
const msgpack_object *tr_mp_get(const msgpack_object *map, const char *key);
int tr_mp_get_u64(const msgpack_object *map, const char *key, uint64_t *out);
int tr_mp_get_i64(const msgpack_object *map, const char *key, int64_t *out);
int tr_mp_get_bool(const msgpack_object *map, const char *key, bool *out);
int tr_mp_get_str(const msgpack_object *map, const char *key, const char **out,
                  size_t *len);
/* Copies a string value into buf (NUL-terminated, truncated to fit). */
int tr_mp_get_strcpy(const msgpack_object *map, const char *key, char *buf,
                     size_t size);

#endif
