/* fuzz_ring.c: libFuzzer harness for the daemon's consumer of shared
 * memory: ring positions and records (daemon/ringread.c), string-arena
 * lookups, and the decoding of records into trace events with enter/exit
 * pairing (daemon/proc.c), written by the JSON writer (output/writer_json.c)
 * and, from the same input again, by the Perfetto writer
 * (output/writer_pftrace.c).
 *
 * The input is a producer's shared memory plus a script of what the
 * producer does between the daemon's drains (make_seeds.py writes it):
 *
 *   offset  size  what
 *   0       8     min_ts: records older than this are "late"
 *   8       136   ring header bytes (tr_ring_hdr up to and including tail)
 *   144     136   arena header bytes (tr_arena_hdr up to `dropped`)
 *   280     2     R: ring data bytes that follow (slot 0 onwards)
 *   282     R     ring data
 *   ...     2     A: arena data bytes that follow (data offset 0 onwards)
 *   ...     A     arena data
 *   ...     rest  ops, each an opcode byte and its arguments (below)
 *
 * The ring has the header's capacity when that is a power of two from 1024
 * to 8192 slots (else 1024, and a header saying otherwise is refused);
 * the arena has the header's capacity when it is 64..256 KiB (else 64
 * KiB).  The header's head is published after the process is attached to
 * its output, so the records count.  Headers the daemon refuses leave the
 * process without that ring or arena; the rest still runs.
 *
 * The output goes to a memfd; when the process is detached and the file
 * finished, JSON must be valid UTF-8 and valid JSON of the object form
 * {"traceEvents":[...]}; a Perfetto trace must be a sequence of whole
 * TracePackets whose messages (down to the descriptors, events and
 * interned entries traced writes) are well-formed protobuf with valid
 * UTF-8 strings.  Crashes, sanitizer reports and invalid output abort.
 * FUZZ_DUMP=1 prints each JSON output (to see what a seed does). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/metaseen.h"
#include "daemon/proc.h"
#include "daemon/ringread.h"
#include "output/formats.h"
#include "output/pb.h"
#include "output/writer.h"
#include "output/writer_json.h"
#include "proto/traced_proto.h"

#define HDR_BYTES 136 /* both headers up to their last field's end */
#define MAX_SLOTS 8192u
#define MAX_VIEWS 64

enum op {
  OP_DRAIN = 0,      /* tr_proc_drain */
  OP_SET_HEAD = 1,   /* u64 */
  OP_ADD_HEAD = 2,   /* u8: head += n */
  OP_WRITE_SLOT = 3, /* u16 slot, 16 bytes */
  OP_COMMITTED = 4,  /* u32 */
  OP_CLOSE = 5,      /* the thread ends: closed = 1 */
  OP_REATTACH = 6,   /* detach, then attach to the output again */
  OP_DROPPED = 7,    /* u64: the producer's drop counter */
  OP_ADD_VIEW = 8,   /* the same ring registered again as another thread */
  OP_ARENA_GET = 9,  /* u32 id: tr_arena_get, and read what it returns */
  OP_ARENA_POKE = 10 /* u32 offset, u8 n, n bytes: rewrite arena data */
};

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz_ring: check failed: %s (%s:%d)\n", #cond, \
              __FILE__, __LINE__);                                    \
      abort();                                                        \
    }                                                                 \
  } while (0)

static int g_out_fd = -1;
static char *g_file;
static size_t g_file_cap;

/* ---- a strict validator for the output ----------------------------------- */

/* Valid UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      k = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      k = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (n - i <= k) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t j = 2; j <= k; j++)
      if ((s[i + j] & 0xc0) != 0x80) return false;
    i += k + 1;
  }
  return true;
}

typedef struct jp {
  const char *s;
  size_t n, i;
} jp;

static void ws(jp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\n' ||
                         p->s[p->i] == '\t' || p->s[p->i] == '\r'))
    p->i++;
}

static bool lit(jp *p, const char *w) {
  size_t k = strlen(w);
  if (p->n - p->i < k || memcmp(p->s + p->i, w, k) != 0) return false;
  p->i += k;
  return true;
}

static bool isdig(char c) { return c >= '0' && c <= '9'; }

static bool jstring(jp *p) {
  if (p->i >= p->n || p->s[p->i] != '"') return false;
  p->i++;
  while (p->i < p->n) {
    unsigned char c = (unsigned char)p->s[p->i++];
    if (c == '"') return true;
    if (c < 0x20) return false;
    if (c != '\\') continue;
    if (p->i >= p->n) return false;
    char e = p->s[p->i++];
    if (e == 'u') {
      for (int j = 0; j < 4; j++, p->i++) {
        if (p->i >= p->n) return false;
        char h = p->s[p->i];
        if (!isdig(h) && !(h >= 'a' && h <= 'f') && !(h >= 'A' && h <= 'F'))
          return false;
      }
    } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
      return false;
    }
  }
  return false;
}

static bool jnumber(jp *p) {
  size_t start = p->i;
  if (p->i < p->n && p->s[p->i] == '-') p->i++;
  if (p->i >= p->n) return false;
  if (p->s[p->i] == '0') {
    p->i++;
  } else if (isdig(p->s[p->i])) {
    while (p->i < p->n && isdig(p->s[p->i])) p->i++;
  } else {
    return false;
  }
  if (p->i < p->n && p->s[p->i] == '.') {
    p->i++;
    if (p->i >= p->n || !isdig(p->s[p->i])) return false;
    while (p->i < p->n && isdig(p->s[p->i])) p->i++;
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i++;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
    if (p->i >= p->n || !isdig(p->s[p->i])) return false;
    while (p->i < p->n && isdig(p->s[p->i])) p->i++;
  }
  return p->i > start;
}

static bool jvalue(jp *p, int depth) {
  if (depth > 32) return false;
  ws(p);
  if (p->i >= p->n) return false;
  char c = p->s[p->i];
  if (c == '"') return jstring(p);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    p->i++;
    ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
      p->i++;
      return true;
    }
    for (;;) {
      if (c == '{') {
        ws(p);
        if (!jstring(p)) return false;
        ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') return false;
        p->i++;
      }
      if (!jvalue(p, depth + 1)) return false;
      ws(p);
      if (p->i >= p->n) return false;
      if (p->s[p->i] == ',') {
        p->i++;
        continue;
      }
      if (p->s[p->i] != close) return false;
      p->i++;
      return true;
    }
  }
  if (lit(p, "true") || lit(p, "false") || lit(p, "null")) return true;
  return jnumber(p);
}

/* Reads the finished output into g_file; returns its length. */
static size_t read_output(void) {
  off_t end = lseek(g_out_fd, 0, SEEK_END);
  CHECK(end > 0);
  if ((size_t)end > g_file_cap) {
    g_file = realloc(g_file, (size_t)end);
    CHECK(g_file != NULL);
    g_file_cap = (size_t)end;
  }
  CHECK(pread(g_out_fd, g_file, (size_t)end, 0) == end);
  return (size_t)end;
}

/* ---- a Perfetto trace: well-formed protobuf ------------------------------ */

static bool pb_varint(const uint8_t *b, size_t n, size_t *i, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *i < n; shift += 7) {
    uint8_t c = b[(*i)++];
    *v |= (uint64_t)(c & 0x7f) << shift;
    if (c < 0x80) return true;
  }
  return false;
}

/* Walks one message.  Length-delimited fields listed in `nested` are
 * walked as messages (one level further down, by the same rule with the
 * table of their own field), those in `strings` must be valid UTF-8. */
typedef struct pb_rule {
  uint32_t field;
  const struct pb_rule *nested; /* NULL: a string or bytes field */
  bool utf8;
} pb_rule;

static bool pb_message(const uint8_t *b, size_t n, const pb_rule *rules) {
  size_t i = 0;
  while (i < n) {
    uint64_t key, v;
    if (!pb_varint(b, n, &i, &key) || (key >> 3) == 0) return false;
    switch (key & 7) {
      case TR_PB_VARINT:
        if (!pb_varint(b, n, &i, &v)) return false;
        break;
      case TR_PB_FIXED64:
        if (n - i < 8) return false;
        i += 8;
        break;
      case TR_PB_LEN: {
        if (!pb_varint(b, n, &i, &v) || v > n - i) return false;
        for (const pb_rule *r = rules; r != NULL && r->field != 0; r++) {
          if (r->field != (key >> 3)) continue;
          if (r->nested != NULL && !pb_message(b + i, v, r->nested))
            return false;
          if (r->utf8 && !utf8_valid(b + i, v)) return false;
        }
        i += v;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

static const pb_rule kName[] = {{2, NULL, true}, {0, NULL, false}};
static const pb_rule kInterned[] = {
    {1, kName, false}, {2, kName, false}, {0, NULL, false}};
static const pb_rule kProcess[] = {{6, NULL, true}, {0, NULL, false}};
static const pb_rule kThread[] = {{5, NULL, true}, {0, NULL, false}};
static const pb_rule kEmpty[] = {{0, NULL, false}};
static const pb_rule kDescriptor[] = {{2, NULL, true},
                                      {3, kProcess, false},
                                      {4, kThread, false},
                                      {8, kEmpty, false},
                                      {0, NULL, false}};
static const pb_rule kAnnotation[] = {
    {6, NULL, true}, {10, NULL, true}, {0, NULL, false}};
static const pb_rule kEvent[] = {
    {4, kAnnotation, false}, {23, NULL, true}, {0, NULL, false}};
static const pb_rule kSnapshot[] = {{1, kEmpty, false}, {0, NULL, false}};
static const pb_rule kPacket[] = {{6, kSnapshot, false},    {11, kEvent, false},
                                  {12, kInterned, false},   {59, kEmpty, false},
                                  {60, kDescriptor, false}, {0, NULL, false}};

static void check_pftrace(void) {
  size_t n = read_output();
  const uint8_t *b = (const uint8_t *)g_file;
  size_t i = 0;
  while (i < n) {
    uint64_t key, len;
    CHECK(pb_varint(b, n, &i, &key) && key == ((1u << 3) | TR_PB_LEN));
    CHECK(pb_varint(b, n, &i, &len) && len <= n - i);
    CHECK(pb_message(b + i, len, kPacket));
    i += len;
  }
}

static void check_output(void) {
  size_t end = read_output();
  CHECK(utf8_valid((const unsigned char *)g_file, (size_t)end));
  static const char head[] = TR_JSON_OBJECT_HEAD;
  CHECK(end > sizeof(head) && memcmp(g_file, head, sizeof(head) - 1) == 0);
  jp p = {g_file, end, 0};
  if (!jvalue(&p, 0)) {
    fprintf(stderr, "fuzz_ring: invalid JSON at byte %zu: %.*s\n", p.i,
            (int)(end - p.i < 80 ? end - p.i : 80), g_file + p.i);
    abort();
  }
  ws(&p);
  CHECK(p.i == end);
  if (getenv("FUZZ_DUMP")) fwrite(g_file, 1, end, stderr);
}

/* ---- the input --------------------------------------------------------- */

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static bool take(reader *r, void *out, size_t k) {
  if (r->n < k) return false;
  if (out != NULL) memcpy(out, r->p, k);
  r->p += k;
  r->n -= k;
  return true;
}

static bool pow2_slots(uint32_t s) {
  return s >= TR_RING_MIN_SLOTS && s <= MAX_SLOTS && (s & (s - 1)) == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* Every refusal logs a line: quiet unless FUZZ_LOG is set (to see
   * what a seed makes the daemon do). */
  tr_log_set_level(getenv("FUZZ_LOG") ? TR_LOG_DEBUG : -1);
  g_out_fd = memfd_create("fuzz-ring-out", MFD_CLOEXEC);
  CHECK(g_out_fd >= 0);
  return 0;
}

/* Runs the input's producer against a writer of `format`, then checks the
 * file. */
static void run(const uint8_t *data, size_t size, tr_format format) {
  reader in = {data, size};
  uint64_t min_ts = 0;
  uint8_t rhdr[HDR_BYTES], ahdr[HDR_BYTES];
  uint16_t rlen = 0, alen = 0;
  memset(rhdr, 0, sizeof(rhdr));
  memset(ahdr, 0, sizeof(ahdr));
  take(&in, &min_ts, 8);
  take(&in, rhdr, HDR_BYTES);
  take(&in, ahdr, HDR_BYTES);
  take(&in, &rlen, 2);
  const uint8_t *rdata = in.p;
  if (rlen > in.n) rlen = (uint16_t)in.n;
  take(&in, NULL, rlen);
  take(&in, &alen, 2);
  const uint8_t *adata = in.p;
  if (alen > in.n) alen = (uint16_t)in.n;
  take(&in, NULL, alen);

  /* The ring: its header as given, but head held back at tail until the
   * process is attached (attaching discards what is already there). */
  tr_ring_hdr rh;
  memcpy(&rh, rhdr, HDR_BYTES < sizeof(rh) ? HDR_BYTES : sizeof(rh));
  uint32_t slots = pow2_slots(rh.capacity) ? rh.capacity : TR_RING_MIN_SLOTS;
  size_t rsize = TR_SHM_HEADER_SIZE + (size_t)slots * sizeof(tr_record);
  uint8_t *ring = aligned_alloc(4096, rsize);
  CHECK(ring != NULL);
  memset(ring, 0, rsize);
  memcpy(ring, rhdr, HDR_BYTES);
  memcpy(ring + TR_SHM_HEADER_SIZE, rdata,
         rlen < rsize - TR_SHM_HEADER_SIZE ? rlen : rsize - TR_SHM_HEADER_SIZE);
  tr_ring_hdr *rhp = (tr_ring_hdr *)ring;
  uint64_t want_head = atomic_load(&rhp->head);
  atomic_store(&rhp->head, atomic_load(&rhp->tail));

  tr_arena_hdr ah;
  memcpy(&ah, ahdr, HDR_BYTES < sizeof(ah) ? HDR_BYTES : sizeof(ah));
  uint32_t dsize =
      ah.capacity >= TR_ARENA_MIN_SIZE && ah.capacity <= 4 * TR_ARENA_MIN_SIZE
          ? ah.capacity
          : TR_ARENA_MIN_SIZE;
  size_t asize = TR_SHM_HEADER_SIZE + (size_t)dsize;
  uint8_t *arena = aligned_alloc(4096, (asize + 4095) & ~(size_t)4095);
  CHECK(arena != NULL);
  memset(arena, 0, asize);
  memcpy(arena, ahdr, HDR_BYTES);
  memcpy(arena + TR_SHM_HEADER_SIZE, adata, alen < dsize ? alen : dsize);
  tr_arena_hdr *ahp = (tr_arena_hdr *)arena;

  CHECK(ftruncate(g_out_fd, 0) == 0);
  CHECK(lseek(g_out_fd, 0, SEEK_SET) == 0);
  tr_writer *out = NULL;
  CHECK(tr_writer_open(&out, g_out_fd, format, "fuzz", 1) == 0);
  tr_metaseen seen;
  tr_metaseen_init(&seen);

  tr_proc p;
  tr_proc_init(&p, 100, 1000, 1000);
  p.producer = true;
  p.pid = 100;
  tr_proc_set_name(&p, "fuzz", 4);
  tr_arenaview av;
  bool have_arena = tr_arena_attach(&av, arena, asize, dsize) == 0;
  if (have_arena) tr_proc_set_arena(&p, &av);
  tr_ringview rv;
  bool have_ring = tr_ringview_attach(&rv, ring, rsize, slots) == 0;
  if (have_ring) CHECK(tr_proc_add_thread(&p, &rv, "main", 4) == 0);
  int views = have_ring ? 1 : 0;

  CHECK(tr_proc_attach(&p, out, 0, &seen, NULL, min_ts, NULL, 0) == 0);
  atomic_store(&rhp->head, want_head);

  tr_proc_stats st;
  memset(&st, 0, sizeof(st));
  uint8_t op;
  while (take(&in, &op, 1)) {
    switch (op) {
      case OP_SET_HEAD: {
        uint64_t v;
        if (!take(&in, &v, 8)) goto done;
        atomic_store(&rhp->head, v);
        break;
      }
      case OP_ADD_HEAD: {
        uint8_t v;
        if (!take(&in, &v, 1)) goto done;
        atomic_fetch_add(&rhp->head, v);
        break;
      }
      case OP_WRITE_SLOT: {
        uint16_t i;
        uint8_t rec[16];
        if (!take(&in, &i, 2) || !take(&in, rec, 16)) goto done;
        memcpy(ring + TR_SHM_HEADER_SIZE + (i & (slots - 1)) * 16u, rec, 16);
        break;
      }
      case OP_COMMITTED: {
        uint32_t v;
        if (!take(&in, &v, 4)) goto done;
        atomic_store(&ahp->committed, v);
        break;
      }
      case OP_CLOSE:
        atomic_store(&rhp->closed, 1);
        break;
      case OP_REATTACH:
        tr_proc_detach(&p, &st, NULL, 0);
        CHECK(tr_proc_attach(&p, out, 0, &seen, NULL, min_ts, NULL, 0) == 0);
        break;
      case OP_DROPPED: {
        uint64_t v;
        if (!take(&in, &v, 8)) goto done;
        atomic_store(&rhp->dropped, v);
        break;
      }
      case OP_ADD_VIEW: {
        tr_ringview v2;
        if (views < MAX_VIEWS &&
            tr_ringview_attach(&v2, ring, rsize, slots) == 0 &&
            tr_proc_add_thread(&p, &v2, "again", 5) == 0)
          views++;
        break;
      }
      case OP_ARENA_GET: {
        uint32_t id, len;
        const char *s;
        if (!take(&in, &id, 4)) goto done;
        if (have_arena && tr_arena_get(&p.arena, id, &s, &len) == 0) {
          CHECK(len <= TR_STRING_MAX_LEN);
          CHECK((const uint8_t *)s >= arena + TR_SHM_HEADER_SIZE &&
                (const uint8_t *)s + len <= arena + asize);
          char copy[TR_STRING_MAX_LEN];
          memcpy(copy, s, len);
        }
        break;
      }
      case OP_ARENA_POKE: {
        uint32_t off;
        uint8_t n;
        if (!take(&in, &off, 4) || !take(&in, &n, 1) || in.n < n) goto done;
        off %= dsize;
        size_t k = n < dsize - off ? n : dsize - off;
        memcpy(arena + TR_SHM_HEADER_SIZE + off, in.p, k);
        take(&in, NULL, n);
        break;
      }
      default:
        tr_proc_drain(&p);
        break;
    }
  }
done:
  tr_proc_drain(&p);
  tr_proc_detach(&p, &st, NULL, 0);
  tr_writer_lane_flush(out, 0, true);
  tr_writer_close(out);
  CHECK(tr_writer_wait(out) == 0);
  if (format == TR_FORMAT_PERFETTO)
    check_pftrace();
  else
    check_output();
  tr_proc_fini(&p);
  tr_writer_free(out);
  tr_metaseen_free(&seen);
  free(ring);
  free(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  run(data, size, TR_FORMAT_JSON);
  run(data, size, TR_FORMAT_PERFETTO);
  return 0;
}
