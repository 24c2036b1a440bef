/* metaseen.c: per-session memory of written metadata (see metaseen.h).
 * One map entry per process and thread seen; events never add to it. */
#include "metaseen.h"

void tr_metaseen_init(tr_metaseen *m) { tr_map_init(&m->map); }

void tr_metaseen_free(tr_metaseen *m) { tr_map_free(&m->map); }

static uint64_t key_of(uint32_t pid, uint32_t tid) {
  return (uint64_t)pid << 32 | tid;
}

#define SORT_INDEX(v) ((uint32_t)((v) >> 32))
#define NAME_HASH(v) ((uint32_t)(v))

uint32_t tr_metaseen_sort_index(tr_metaseen *m, uint32_t pid, uint32_t next,
                                bool *is_new) {
  uint64_t *v = tr_map_insert(&m->map, key_of(pid, 0), is_new);
  if (v == NULL) {
    *is_new = true;
    return next;
  }
  if (*is_new) *v = (uint64_t)next << 32;
  return SORT_INDEX(*v);
}

bool tr_metaseen_joined(const tr_metaseen *m, uint32_t pid) {
  return tr_map_get(&m->map, key_of(pid, 0)) != NULL;
}

bool tr_metaseen_has(const tr_metaseen *m, uint32_t pid, uint32_t tid) {
  const uint64_t *v = tr_map_get(&m->map, key_of(pid, tid));
  return v != NULL && NAME_HASH(*v) != 0;
}

static uint32_t fnv1a(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

bool tr_metaseen_name(tr_metaseen *m, uint32_t pid, uint32_t tid,
                      const char *name, size_t len) {
  uint64_t *v = tr_map_insert(&m->map, key_of(pid, tid), NULL);
  if (v == NULL) return true;         /* no memory: rather twice than never */
  uint32_t h = fnv1a(name, len) | 1u; /* 0 means "nothing written yet" */
  if (NAME_HASH(*v) == h) return false;
  *v = (*v & ~(uint64_t)UINT32_MAX) | h;
  return true;
}
