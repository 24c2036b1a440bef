/* metaseen.c: per-session memory of written metadata (see metaseen.h).
 * 24 bytes per process and thread seen; events never add to it. */
#include "metaseen.h"

#include <stdlib.h>

void tr_metaseen_init(tr_metaseen *m) {
  m->slots = NULL;
  m->cap = m->len = 0;
}

void tr_metaseen_free(tr_metaseen *m) {
  free(m->slots);
  tr_metaseen_init(m);
}

static size_t slot_of(uint64_t key, size_t cap) {
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  return (size_t)(h ^ (h >> 32)) & (cap - 1);
}

static bool grow(tr_metaseen *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  tr_metaseen_entry *n = calloc(cap, sizeof(*n));
  if (n == NULL) return false;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->slots[i].used) continue;
    size_t j = slot_of(m->slots[i].key, cap);
    while (n[j].used) j = (j + 1) & (cap - 1);
    n[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = n;
  m->cap = cap;
  return true;
}

/* The entry for key, created empty if absent; NULL without memory. */
static tr_metaseen_entry *find(tr_metaseen *m, uint64_t key, bool *is_new) {
  *is_new = false;
  if ((m->len + 1) * 2 > m->cap && !grow(m)) return NULL;
  size_t j = slot_of(key, m->cap);
  while (m->slots[j].used) {
    if (m->slots[j].key == key) return &m->slots[j];
    j = (j + 1) & (m->cap - 1);
  }
  m->slots[j].used = true;
  m->slots[j].key = key;
  m->len++;
  *is_new = true;
  return &m->slots[j];
}

static uint64_t key_of(uint32_t pid, uint32_t tid) {
  return (uint64_t)pid << 32 | tid;
}

uint32_t tr_metaseen_sort_index(tr_metaseen *m, uint32_t pid, uint32_t next,
                                bool *is_new) {
  tr_metaseen_entry *e = find(m, key_of(pid, 0), is_new);
  if (e == NULL) {
    *is_new = true;
    return next;
  }
  if (*is_new) e->sort_index = next;
  return e->sort_index;
}

bool tr_metaseen_has(const tr_metaseen *m, uint32_t pid, uint32_t tid) {
  if (m->cap == 0) return false;
  uint64_t key = key_of(pid, tid);
  size_t j = slot_of(key, m->cap);
  while (m->slots[j].used) {
    if (m->slots[j].key == key) return m->slots[j].name_hash != 0;
    j = (j + 1) & (m->cap - 1);
  }
  return false;
}

static uint32_t fnv1a(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
  return h;
}

bool tr_metaseen_name(tr_metaseen *m, uint32_t pid, uint32_t tid,
                      const char *name, size_t len) {
  bool fresh;
  tr_metaseen_entry *e = find(m, key_of(pid, tid), &fresh);
  if (e == NULL) return true;         /* no memory: rather twice than never */
  uint32_t h = fnv1a(name, len) | 1u; /* 0 means "nothing written yet" */
  if (e->name_hash == h) return false;
  e->name_hash = h;
  return true;
}
