/* intern.c: the byte-string interner of intern.h. */
#include "intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void tr_intern_init(tr_intern *t) { memset(t, 0, sizeof(*t)); }

void tr_intern_free(tr_intern *t) {
  tr_map_free(&t->map);
  free(t->bytes);
  free(t->off);
  free(t->slen);
  tr_intern_init(t);
}

void tr_intern_clear(tr_intern *t) {
  tr_map_clear(&t->map);
  t->len = 0;
  t->n = 0;
}

typedef struct probe {
  const tr_intern *t;
  const void *s;
  size_t n;
} probe;

static bool same(const void *ctx, uint64_t id) {
  const probe *p = ctx;
  return p->t->slen[id] == p->n &&
         memcmp(p->t->bytes + p->t->off[id], p->s, p->n) == 0;
}

int64_t tr_intern_find(const tr_intern *t, const void *s, size_t n) {
  probe p = {t, s, n};
  uint64_t *id = tr_map_find(&t->map, tr_map_hash_bytes(s, n), same, &p);
  return id != NULL ? (int64_t)*id : -1;
}

/* Room for one more id and n more bytes. */
static int room(tr_intern *t, size_t n) {
  if (t->n == t->idcap) {
    uint32_t cap = t->idcap ? t->idcap * 2 : 256;
    uint64_t *off = realloc(t->off, cap * sizeof(*off));
    if (off == NULL) return -ENOMEM;
    t->off = off;
    uint32_t *sl = realloc(t->slen, cap * sizeof(*sl));
    if (sl == NULL) return -ENOMEM;
    t->slen = sl;
    t->idcap = cap;
  }
  /* Allocated even for an empty string: strings are read as bytes +
   * offset. */
  if (t->bytes == NULL || n > t->cap - t->len) {
    size_t cap = t->cap ? t->cap : 4096;
    while (n > cap - t->len) {
      if (cap > SIZE_MAX / 2) return -ENOMEM;
      cap *= 2;
    }
    char *b = realloc(t->bytes, cap);
    if (b == NULL) return -ENOMEM;
    t->bytes = b;
    t->cap = cap;
  }
  return 0;
}

int64_t tr_intern_add(tr_intern *t, const void *s, size_t n) {
  uint64_t h = tr_map_hash_bytes(s, n);
  probe p = {t, s, n};
  uint64_t *found = tr_map_find(&t->map, h, same, &p);
  if (found != NULL) return (int64_t)*found;
  if (t->n >= UINT32_MAX - 1 || n > UINT32_MAX || room(t, n) < 0 ||
      tr_map_add(&t->map, h, t->n) < 0)
    return -ENOMEM;
  uint32_t id = t->n++;
  if (n > 0) memcpy(t->bytes + t->len, s, n);
  t->off[id] = t->len;
  t->slen[id] = (uint32_t)n;
  t->len += n;
  return id;
}
