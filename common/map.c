/* map.c: the open-addressing hash map and the direct-mapped cache of
 * map.h. */
#include "map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The smallest table: a map that is used holds a few entries at least. */
#define MIN_CAP 8u

void tr_map_init(tr_map *m) { memset(m, 0, sizeof(*m)); }

void tr_map_free(tr_map *m) {
  free(m->slots);
  tr_map_init(m);
}

void tr_map_clear(tr_map *m) {
  if (m->slots != NULL) memset(m->slots, 0, m->cap * sizeof(*m->slots));
  m->len = 0;
  m->has_zero = false;
  m->zero = 0;
}

/* The first slot on key's probe path that holds key or is empty. */
static tr_map_slot *probe(const tr_map *m, uint64_t key) {
  size_t i = tr_map_home(m, key);
  while (m->slots[i].key != 0 && m->slots[i].key != key)
    i = (i + 1) & (m->cap - 1);
  return &m->slots[i];
}

/* The first empty slot on key's probe path. */
static tr_map_slot *probe_empty(const tr_map *m, uint64_t key) {
  size_t i = tr_map_home(m, key);
  while (m->slots[i].key != 0) i = (i + 1) & (m->cap - 1);
  return &m->slots[i];
}

static int rehash(tr_map *m, size_t cap) {
  tr_map_slot *s = calloc(cap, sizeof(*s));
  if (s == NULL) return -ENOMEM;
  tr_map old = *m;
  m->slots = s;
  m->cap = cap;
  m->shift = 64;
  for (size_t c = cap; c > 1; c >>= 1) m->shift--;
  for (size_t i = 0; i < old.cap; i++)
    if (old.slots[i].key != 0) *probe_empty(m, old.slots[i].key) = old.slots[i];
  free(old.slots);
  return 0;
}

int tr_map_reserve(tr_map *m, size_t n) {
  if (n > SIZE_MAX / 2 / sizeof(tr_map_slot)) return -ENOMEM;
  size_t cap = m->cap ? m->cap : MIN_CAP;
  /* At most half full: short probe paths, and an empty slot always ends
   * one. */
  while (cap < 2 * n) cap *= 2;
  return cap == m->cap ? 0 : rehash(m, cap);
}

/* Room for one more entry in the table. */
static int room(tr_map *m) {
  return 2 * (m->len + 1) > m->cap ? tr_map_reserve(m, m->len + 1) : 0;
}

uint64_t *tr_map_insert(tr_map *m, uint64_t key, bool *added) {
  bool dummy;
  if (added == NULL) added = &dummy;
  *added = false;
  if (key == 0) {
    if (!m->has_zero) {
      m->has_zero = true;
      m->zero = 0;
      m->len++;
      *added = true;
    }
    return &m->zero;
  }
  uint64_t *v = tr_map_get(m, key);
  if (v != NULL) return v;
  if (room(m) < 0) return NULL;
  tr_map_slot *s = probe_empty(m, key);
  s->key = key;
  s->value = 0;
  m->len++;
  *added = true;
  return &s->value;
}

int tr_map_set(tr_map *m, uint64_t key, uint64_t value) {
  uint64_t *v = tr_map_insert(m, key, NULL);
  if (v == NULL) return -ENOMEM;
  *v = value;
  return 0;
}

bool tr_map_remove(tr_map *m, uint64_t key) {
  if (key == 0) {
    if (!m->has_zero) return false;
    m->has_zero = false;
    m->zero = 0;
    m->len--;
    return true;
  }
  if (m->cap == 0) return false;
  tr_map_slot *s = probe(m, key);
  if (s->key == 0) return false;
  /* Backward-shift deletion: the entries after the hole on its probe run
   * move back into it when their own probe path passes through it, so no
   * tombstone is needed and every lookup still ends at an empty slot. */
  size_t mask = m->cap - 1;
  size_t hole = (size_t)(s - m->slots);
  for (size_t i = (hole + 1) & mask; m->slots[i].key != 0; i = (i + 1) & mask) {
    size_t home = tr_map_home(m, m->slots[i].key);
    /* Whether home lies cyclically in (hole, i]: then the entry stays. */
    bool stays =
        hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
    if (stays) continue;
    m->slots[hole] = m->slots[i];
    hole = i;
  }
  m->slots[hole].key = 0;
  m->slots[hole].value = 0;
  m->len--;
  return true;
}

/* ---- keyed by hash ------------------------------------------------------ */

uint64_t tr_map_hash_bytes(const void *s, size_t n) {
  const uint8_t *p = s;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t tr_map_hash_pair(uint64_t a, uint64_t b) {
  uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 29);
}

/* Hashes are stored as keys; 0 marks an empty slot, so a zero hash is
 * stored as another value (its entries are told apart by eq anyway). */
static uint64_t hash_key(uint64_t hash) { return hash != 0 ? hash : 1; }

uint64_t *tr_map_find(const tr_map *m, uint64_t hash, tr_map_eq_fn eq,
                      const void *ctx) {
  if (m->cap == 0) return NULL;
  uint64_t key = hash_key(hash);
  for (size_t i = tr_map_home(m, key); m->slots[i].key != 0;
       i = (i + 1) & (m->cap - 1))
    if (m->slots[i].key == key && eq(ctx, m->slots[i].value))
      return &m->slots[i].value;
  return NULL;
}

int tr_map_add(tr_map *m, uint64_t hash, uint64_t value) {
  if (room(m) < 0) return -ENOMEM;
  tr_map_slot *s = probe_empty(m, hash_key(hash));
  s->key = hash_key(hash);
  s->value = value;
  m->len++;
  return 0;
}

bool tr_map_next(const tr_map *m, size_t *it, uint64_t *key, uint64_t *value) {
  /* *it: 0 before key 0's entry, then 1 + the next slot to look at. */
  if (*it == 0) {
    *it = 1;
    if (m->has_zero) {
      *key = 0;
      *value = m->zero;
      return true;
    }
  }
  for (; *it <= m->cap; (*it)++) {
    const tr_map_slot *s = &m->slots[*it - 1];
    if (s->key == 0) continue;
    *key = s->key;
    *value = s->value;
    (*it)++;
    return true;
  }
  return false;
}

/* ---- a fixed-size cache ------------------------------------------------- */

int tr_cache_init(tr_cache *c, size_t slots, unsigned shift) {
  c->slots = calloc(slots, sizeof(*c->slots));
  if (c->slots == NULL) return -ENOMEM;
  c->mask = slots - 1;
  c->shift = shift;
  return 0;
}

void tr_cache_free(tr_cache *c) {
  free(c->slots);
  c->slots = NULL;
  c->mask = 0;
}
