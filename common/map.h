/* map.h: the project's one hash map, 64-bit keys to 64-bit values in an
 * open-addressing table (linear probing, a power-of-two table at most half
 * full, grown by rehashing), and a fixed-size cache beside it.
 *
 * Two ways to key a map; one map uses one of them:
 *   * By value: the key is a 64-bit integer (a pid, a uuid, a string id, or
 *     two 32-bit values side by side) and each key has at most one entry.
 *     Every key is allowed, 0 included (it is kept beside the table).
 *   * By hash: for keys wider than 64 bits (a byte string, two 64-bit
 *     values), the key is the hash of the caller's key and the value names
 *     the caller's record (an index or a pointer).  Entries may share a
 *     hash; tr_map_find asks the caller's eq function which entry is the
 *     one.  tr_intern (intern.h) is a byte-string interner built this way.
 *
 * Nothing allocates on lookup; tr_map_set, tr_map_insert and tr_map_add
 * may grow the table, which moves every entry: a value pointer returned by
 * any of these functions is valid only until the next call that adds or
 * removes an entry.  Not thread-safe: the owner serialises access. */
#ifndef TRACED_MAP_H
#define TRACED_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tr_map_slot {
  uint64_t key; /* 0: empty (key 0 itself lives in tr_map.zero) */
  uint64_t value;
} tr_map_slot;

typedef struct tr_map {
  tr_map_slot *slots; /* cap slots; NULL until the first entry */
  size_t cap;         /* 0 or a power of two, 2^(64 - shift) */
  unsigned shift;
  size_t len;    /* entries, key 0's included */
  bool has_zero; /* key 0 has an entry: its value is `zero` */
  uint64_t zero;
} tr_map;

/* Where key's probe starts: Fibonacci hashing, the top bits of key times
 * 2^64 / phi, which every bit of the key moves, so aligned keys (string
 * offsets) and keys that differ only high up (pid << 32 | tid) spread
 * alike.  One multiply and one shift: the daemon looks up per event. */
static inline size_t tr_map_home(const tr_map *m, uint64_t key) {
  return (size_t)((key * 0x9e3779b97f4a7c15ull) >> m->shift);
}

/* An empty map; a zeroed tr_map is one too. */
void tr_map_init(tr_map *m);

/* Frees the table; the map is empty again and may be reused. */
void tr_map_free(tr_map *m);

/* Forgets every entry, keeping the table's memory. */
void tr_map_clear(tr_map *m);

/* Makes room for n entries in all without growing again.  Returns 0 or
 * -ENOMEM (the map is unchanged). */
int tr_map_reserve(tr_map *m, size_t n);

/* ---- keyed by value ----------------------------------------------------- */

/* The value of key, or NULL when it has no entry. */
static inline uint64_t *tr_map_get(const tr_map *m, uint64_t key) {
  if (m->cap == 0) return key == 0 && m->has_zero ? (uint64_t *)&m->zero : NULL;
  for (size_t i = tr_map_home(m, key);; i = (i + 1) & (m->cap - 1)) {
    uint64_t k = m->slots[i].key;
    /* Key 0 "matches" the first empty slot: its entry is beside the table. */
    if (k == key)
      return key != 0      ? &m->slots[i].value
             : m->has_zero ? (uint64_t *)&m->zero
                           : NULL;
    if (k == 0) return NULL;
  }
}

/* The value of key, added as 0 when key had no entry (*added says which;
 * `added` may be NULL).  Returns NULL when out of memory (nothing added). */
uint64_t *tr_map_insert(tr_map *m, uint64_t key, bool *added);

/* key -> value, replacing the old value.  Returns 0 or -ENOMEM. */
int tr_map_set(tr_map *m, uint64_t key, uint64_t value);

/* Removes key's entry; false when it had none.  Never allocates. */
bool tr_map_remove(tr_map *m, uint64_t key);

/* ---- keyed by hash ------------------------------------------------------ */

/* Says whether the entry whose value is `value` is the one looked for. */
typedef bool (*tr_map_eq_fn)(const void *ctx, uint64_t value);

/* Hashes for keys wider than 64 bits (FNV-1a; not keyed: a hostile input
 * can make keys collide, which costs time, never correctness). */
uint64_t tr_map_hash_bytes(const void *s, size_t n);
uint64_t tr_map_hash_pair(uint64_t a, uint64_t b);

/* The value of the entry under `hash` that eq(ctx, value) accepts, or
 * NULL. */
uint64_t *tr_map_find(const tr_map *m, uint64_t hash, tr_map_eq_fn eq,
                      const void *ctx);

/* Adds an entry under `hash` beside any that has it already (the caller
 * found none equal first).  Returns 0 or -ENOMEM. */
int tr_map_add(tr_map *m, uint64_t hash, uint64_t value);

/* ---- every entry -------------------------------------------------------- */

/* Walks the entries in no particular order: start with *it = 0; each call
 * sets *key (a hash, for a map keyed by hash) and *value and returns true,
 * or returns false after the last.  The map must not change meanwhile. */
bool tr_map_next(const tr_map *m, size_t *it, uint64_t *key, uint64_t *value);

/* ---- a fixed-size cache ------------------------------------------------- */

/* A direct-mapped cache: each key has exactly one slot, (key >> shift) &
 * (slots - 1), and a new key there evicts the old one, so its memory is
 * fixed however many keys pass through.  Keys that are offsets into an
 * append-only arena, aligned to 1 << shift, fill consecutive slots: the
 * first `slots` of them never evict each other.  What a value points to
 * belongs to the caller, who may reuse it when its key is evicted. */
typedef struct tr_cache_slot {
  uint64_t key;
  void *value; /* NULL: the slot is empty */
} tr_cache_slot;

typedef struct tr_cache {
  tr_cache_slot *slots; /* NULL until tr_cache_init */
  size_t mask;
  unsigned shift;
} tr_cache;

/* `slots` is a power of two.  Returns 0 or -ENOMEM. */
int tr_cache_init(tr_cache *c, size_t slots, unsigned shift);

/* Frees the slots (not what their values point to: walk them first). */
void tr_cache_free(tr_cache *c);

/* The one slot key may be cached in: a hit when it has a value and holds
 * key; otherwise the caller may fill it (evicting what it held). */
static inline tr_cache_slot *tr_cache_slot_of(const tr_cache *c, uint64_t key) {
  return &c->slots[(key >> c->shift) & c->mask];
}

#endif
