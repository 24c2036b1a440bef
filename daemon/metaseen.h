/* metaseen.h: what metadata a session's output already holds, so that a
 * pid that joins twice (a process that exec()s a new Python program keeps
 * its pid) keeps its sort index and gets each name written once. */
#ifndef TRACED_METASEEN_H
#define TRACED_METASEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/map.h"

/* pid << 32 | tid (tid 0: the process) -> sort_index << 32 | the hash of
 * the name last written for it (0: none). */
typedef struct tr_metaseen {
  tr_map map;
} tr_metaseen;

void tr_metaseen_init(tr_metaseen *m);
void tr_metaseen_free(tr_metaseen *m);

/* The process's sort index: the one it got when it first joined, else
 * `next`, remembered.  *is_new says which. */
uint32_t tr_metaseen_sort_index(tr_metaseen *m, uint32_t pid, uint32_t next,
                                bool *is_new);

/* True when the process pid has been given a sort index: it joined. */
bool tr_metaseen_joined(const tr_metaseen *m, uint32_t pid);

/* True when (pid, tid) has had a name written. */
bool tr_metaseen_has(const tr_metaseen *m, uint32_t pid, uint32_t tid);

/* True when the name for (pid, tid) must be written: it was never written,
 * or a different name was.  Records it as written. */
bool tr_metaseen_name(tr_metaseen *m, uint32_t pid, uint32_t tid,
                      const char *name, size_t len);

#endif
