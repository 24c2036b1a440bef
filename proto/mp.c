/* mp.c: msgpack map helpers shared by daemon and clients. */
#include "mp.h"

#include <errno.h>
#include <string.h>

void tr_mp_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

void tr_mp_kv_strn(msgpack_packer *pk, const char *key, const char *val,
                   size_t n) {
  tr_mp_str(pk, key);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, val, n);
}

void tr_mp_kv_str(msgpack_packer *pk, const char *key, const char *val) {
  tr_mp_kv_strn(pk, key, val, strlen(val));
}

void tr_mp_kv_u64(msgpack_packer *pk, const char *key, uint64_t val) {
  tr_mp_str(pk, key);
  msgpack_pack_uint64(pk, val);
}

void tr_mp_kv_i64(msgpack_packer *pk, const char *key, int64_t val) {
  tr_mp_str(pk, key);
  msgpack_pack_int64(pk, val);
}

void tr_mp_kv_bool(msgpack_packer *pk, const char *key, bool val) {
  tr_mp_str(pk, key);
  if (val)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

const msgpack_object *tr_mp_get(const msgpack_object *map, const char *key) {
  if (map == NULL || map->type != MSGPACK_OBJECT_MAP) return NULL;
  size_t klen = strlen(key);
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    const msgpack_object_kv *kv = &map->via.map.ptr[i];
    if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
        memcmp(kv->key.via.str.ptr, key, klen) == 0)
      return &kv->val;
  }
  return NULL;
}

int tr_mp_get_u64(const msgpack_object *map, const char *key, uint64_t *out) {
  const msgpack_object *o = tr_mp_get(map, key);
  if (o == NULL) return -ENOENT;
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return -EINVAL;
  *out = o->via.u64;
  return 0;
}

int tr_mp_get_i64(const msgpack_object *map, const char *key, int64_t *out) {
  const msgpack_object *o = tr_mp_get(map, key);
  if (o == NULL) return -ENOENT;
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = o->via.i64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    *out = (int64_t)o->via.u64;
    return 0;
  }
  return -EINVAL;
}

int tr_mp_get_bool(const msgpack_object *map, const char *key, bool *out) {
  const msgpack_object *o = tr_mp_get(map, key);
  if (o == NULL) return -ENOENT;
  if (o->type != MSGPACK_OBJECT_BOOLEAN) return -EINVAL;
  *out = o->via.boolean;
  return 0;
}

int tr_mp_get_str(const msgpack_object *map, const char *key, const char **out,
                  size_t *len) {
  const msgpack_object *o = tr_mp_get(map, key);
  if (o == NULL) return -ENOENT;
  if (o->type != MSGPACK_OBJECT_STR) return -EINVAL;
  *out = o->via.str.ptr;
  *len = o->via.str.size;
  return 0;
}

int tr_mp_get_strcpy(const msgpack_object *map, const char *key, char *buf,
                     size_t size) {
  const char *s;
  size_t n;
  int rc = tr_mp_get_str(map, key, &s, &n);
  if (rc < 0) return rc;
  if (size == 0) return -EINVAL;
  if (n >= size) n = size - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return 0;
}
