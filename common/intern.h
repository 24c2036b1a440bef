/* intern.h: a byte-string interner: each distinct string gets a dense id
 * (0, 1, 2, ... in the order first added) and is stored once, back to back
 * in one growing arena, found again by its content through a tr_map keyed
 * by hash (map.h).
 *
 * Strings are raw bytes (any byte, NUL included) up to UINT32_MAX long.
 * Memory grows with the distinct strings only.  Not thread-safe: the owner
 * serialises access. */
#ifndef TRACED_INTERN_H
#define TRACED_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

typedef struct tr_intern {
  tr_map map;  /* hash of the bytes -> id */
  char *bytes; /* every string, back to back */
  size_t len, cap;
  uint64_t *off;  /* per id: where its bytes start */
  uint32_t *slen; /* per id: how many */
  uint32_t n, idcap;
} tr_intern;

/* An empty interner; a zeroed tr_intern is one too. */
void tr_intern_init(tr_intern *t);
void tr_intern_free(tr_intern *t);

/* Forgets every string, keeping the memory; ids start again at 0. */
void tr_intern_clear(tr_intern *t);

/* The id of s[0..n), added when new.  Returns the id or -ENOMEM (also for
 * a string longer than UINT32_MAX or a table of UINT32_MAX - 1 ids). */
int64_t tr_intern_add(tr_intern *t, const void *s, size_t n);

/* The id of s[0..n), or -1 when it was never added. */
int64_t tr_intern_find(const tr_intern *t, const void *s, size_t n);

/* The number of strings (the next id). */
static inline uint32_t tr_intern_count(const tr_intern *t) { return t->n; }

/* The bytes of id (< tr_intern_count) and their length; valid until the
 * next tr_intern_add (the arena may move). */
static inline const char *tr_intern_str(const tr_intern *t, uint32_t id,
                                        size_t *len) {
  *len = t->slen[id];
  return t->bytes + t->off[id];
}

#endif
