/* tsclock.c: the daemon's TSC-to-CLOCK_MONOTONIC conversion (tsclock.h). */
#include "tsclock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The tick clock producers may stamp records with: the TSC on x86-64,
 * the performance counter on Windows (PROTOCOL.md sections 3 and 9). */
#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#define TR_HAVE_TICKS 1
static uint64_t ticks(void) {
  LARGE_INTEGER c;
  QueryPerformanceCounter(&c);
  return (uint64_t)c.QuadPart;
}
#elif defined(__x86_64__)
#include <x86intrin.h>
#define TR_HAVE_TICKS 1
static uint64_t ticks(void) { return __rdtsc(); }
#endif

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The tightest of three back-to-back readings: the TSC is taken as the
 * midpoint of the two reads around clock_gettime. */
static void sample_hw(void *ctx, uint64_t *tsc, uint64_t *ns) {
  (void)ctx;
#if defined(TR_HAVE_TICKS)
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 3; i++) {
    uint64_t t1 = ticks();
    uint64_t n = mono_ns();
    uint64_t t2 = ticks();
    if (t2 >= t1 && t2 - t1 < best) {
      best = t2 - t1;
      *tsc = t1 + (t2 - t1) / 2;
      *ns = n;
    }
  }
  if (best != UINT64_MAX) return;
#endif
  *ns = mono_ns();
  *tsc = *ns;
}

#if defined(__x86_64__) && !defined(_WIN32)
/* True when the first line of `path` that starts with `key` contains every
 * word of `words` (space-separated flags, as in /proc/cpuinfo). */
static bool file_has(const char *path, const char *key, const char *const *w) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return false;
  char line[8192];
  bool found = false, all = false;
  while (!found && fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, key, strlen(key)) != 0) continue;
    found = true;
    all = true;
    for (; *w != NULL; w++) {
      size_t n = strlen(*w);
      const char *s = line;
      bool hit = false;
      while ((s = strstr(s, *w)) != NULL) {
        if ((s == line || s[-1] == ' ') &&
            (s[n] == ' ' || s[n] == '\n' || s[n] == '\0')) {
          hit = true;
          break;
        }
        s += n;
      }
      if (!hit) all = false;
    }
  }
  fclose(f);
  return all;
}
#endif

bool tr_tsclock_usable(const char **why) {
#if defined(_WIN32)
  /* Windows keeps the performance counter monotonic and consistent across
   * processors ("Acquiring high-resolution time stamps"). */
  *why = "";
  return true;
#elif defined(__x86_64__)
  static const char *const flags[] = {"constant_tsc", "nonstop_tsc", NULL};
  if (!file_has("/proc/cpuinfo", "flags", flags)) {
    *why = "the CPU's TSC is not invariant (constant_tsc, nonstop_tsc)";
    return false;
  }
  static const char *const tsc[] = {"tsc", NULL};
  if (!file_has("/sys/devices/system/clocksource/clocksource0/"
                "current_clocksource",
                "", tsc)) {
    *why = "the kernel's clocksource is not the TSC";
    return false;
  }
  *why = "";
  return true;
#else
  *why = "no TSC support for this architecture";
  return false;
#endif
}

static inline tr_tsc_anchor *at(tr_tsclock *c, uint32_t i) {
  return &c->a[(c->first + i) % TR_TSCLOCK_ANCHORS];
}

/* ns per tick << 32 from a to (tsc, ns); 0 when time did not advance. */
static uint64_t slope(const tr_tsc_anchor *a, uint64_t tsc, uint64_t ns) {
  if (tsc <= a->tsc || ns <= a->ns) return 0;
  unsigned __int128 q =
      ((unsigned __int128)(ns - a->ns) << 32) / (tsc - a->tsc);
  return q > UINT64_MAX ? UINT64_MAX : (uint64_t)q;
}

/* (d * mult) >> 32, saturated; 64-bit arithmetic in the usual case. */
static inline uint64_t mul_shift(uint64_t d, uint64_t mult) {
  if (((d | mult) >> 32) == 0) return (d * mult) >> 32;
  unsigned __int128 v = ((unsigned __int128)d * mult) >> 32;
  return v > UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

static inline uint64_t add_sat(uint64_t a, uint64_t b) {
  return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t along_with(const tr_tsc_anchor *a, uint64_t mult,
                           uint64_t tsc) {
  return add_sat(a->ns, mul_shift(tsc - a->tsc, mult));
}

static uint64_t along(const tr_tsc_anchor *a, uint64_t tsc) {
  return along_with(a, a->mult, tsc);
}

static void append(tr_tsclock *c, uint64_t tsc, uint64_t ns, uint64_t mult) {
  if (c->count == TR_TSCLOCK_ANCHORS) {
    c->first = (c->first + 1) % TR_TSCLOCK_ANCHORS;
    c->count--;
    if (c->hint > 0) c->hint--;
  }
  tr_tsc_anchor *a = at(c, c->count++);
  a->tsc = tsc;
  a->ns = ns;
  a->mult = mult;
  c->last_tsc = tsc;
  c->last_ns = ns;
  c->seg_len = 0; /* segments may have changed */
}

/* Places a fresh anchor after `tsc`; false when the sample is not past it
 * (a reading from a core whose TSC runs slightly ahead of ours). */
static bool advance(tr_tsclock *c, uint64_t tsc) {
  uint64_t s_tsc, s_ns;
  c->sample(c->sample_ctx, &s_tsc, &s_ns);
  uint64_t floor_tsc = tsc > c->extrap_max ? tsc : c->extrap_max;
  if (s_tsc <= floor_tsc) return false;
  tr_tsc_anchor *last = at(c, c->count - 1);
  if (c->extrap_max > last->tsc) {
    /* Freeze what was handed out past the last anchor: that stretch is a
     * segment with the slope it was extrapolated with. */
    last->mult = c->ext_mult;
    append(c, c->extrap_max, along(last, c->extrap_max), c->ext_mult);
    last = at(c, c->count - 1);
  }
  c->extrap_max = 0;
  if (s_ns < last->ns) s_ns = last->ns;
  last->mult = slope(last, s_tsc, s_ns);
  append(c, s_tsc, s_ns, last->mult);
  c->samples++;
  /* The extrapolation slope: from the older of two real samples kept
   * 10-20 s apart, so it stays accurate however short the last segment. */
  tr_tsc_anchor s_real = {s_tsc, s_ns, 0};
  uint64_t m = slope(&c->base[0], s_tsc, s_ns);
  if (m != 0) c->ext_mult = m;
  if (along_with(&c->base[1], c->ext_mult, s_tsc) - c->base[1].ns >=
      TR_TSCLOCK_BASELINE_NS) {
    c->base[0] = c->base[1];
    c->base[1] = s_real;
  }
  return true;
}

void tr_tsclock_init(tr_tsclock *c, tr_tsclock_sample_fn sample, void *ctx,
                     unsigned calib_us) {
  memset(c, 0, sizeof(*c));
  c->sample = sample != NULL ? sample : sample_hw;
  c->sample_ctx = ctx;
  uint64_t tsc, ns;
  c->sample(ctx, &tsc, &ns);
  append(c, tsc, ns, 0);
  c->samples = 1;
  if (sample == NULL) {
    struct timespec d = {0, (long)calib_us * 1000};
    nanosleep(&d, NULL);
  }
  /* With a single anchor every later reading is past it: take one. */
  uint64_t t2, n2;
  c->sample(ctx, &t2, &n2);
  tr_tsc_anchor *a0 = at(c, 0);
  if (t2 <= a0->tsc) t2 = a0->tsc + 1;
  if (n2 < a0->ns) n2 = a0->ns;
  a0->mult = slope(a0, t2, n2);
  if (a0->mult == 0) a0->mult = 1ull << 32; /* a stopped clock: 1 tick/ns */
  append(c, t2, n2, a0->mult);
  c->samples++;
  c->ext_mult = a0->mult;
  c->base[0] = c->base[1] = *a0;
  uint64_t m = a0->mult;
  unsigned __int128 g = ((unsigned __int128)TR_TSCLOCK_GAP_NS << 32) / m;
  c->gap_ticks = g == 0 ? 1 : (g > UINT64_MAX ? UINT64_MAX : (uint64_t)g);
}

/* Readings in no cached segment. */
static uint64_t __attribute__((noinline))
convert_slow(tr_tsclock *c, uint64_t tsc) {
  uint32_t n = c->count;
  tr_tsc_anchor *last = at(c, n - 1);
  if (tsc >= last->tsc) {
    if (tsc - last->tsc < c->gap_ticks || tsc <= c->extrap_max ||
        !advance(c, tsc)) {
      if (tsc > c->extrap_max) c->extrap_max = tsc;
      return along_with(last, c->ext_mult, tsc);
    }
    n = c->count;
  }
  /* Find segment i with a[i].tsc <= tsc < a[i+1].tsc: the last one used
   * first (readings arrive nearly in order), else binary search. */
  uint32_t i = c->hint;
  if (!(i + 1 < n && at(c, i)->tsc <= tsc && tsc < at(c, i + 1)->tsc)) {
    tr_tsc_anchor *a0 = at(c, 0);
    if (tsc < a0->tsc) {
      /* Older than every anchor held: extrapolate backwards. */
      uint64_t d = mul_shift(a0->tsc - tsc, a0->mult);
      return d >= a0->ns ? 0 : a0->ns - d;
    }
    uint32_t lo = 0, hi = n - 1; /* a[lo].tsc <= tsc < a[hi].tsc */
    while (hi - lo > 1) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (at(c, mid)->tsc <= tsc)
        lo = mid;
      else
        hi = mid;
    }
    i = lo;
    c->hint = i;
  }
  tr_tsc_anchor *a = at(c, i), *b = at(c, i + 1);
  c->seg_tsc = a->tsc;
  c->seg_len = b->tsc - a->tsc;
  c->seg_ns = a->ns;
  c->seg_mult = a->mult;
  c->seg_ns_end = b->ns;
  uint64_t v = along(a, tsc);
  return v < b->ns ? v : b->ns;
}

uint64_t tr_tsclock_ns(tr_tsclock *c, uint64_t tsc) {
  /* Most readings fall in the segment used last... */
  uint64_t d = tsc - c->seg_tsc;
  if (d < c->seg_len) {
    uint64_t v = add_sat(c->seg_ns, mul_shift(d, c->seg_mult));
    return v < c->seg_ns_end ? v : c->seg_ns_end;
  }
  /* ...or just past the last anchor, within the gap: extrapolated. */
  d = tsc - c->last_tsc;
  if (d < c->gap_ticks) {
    if (tsc > c->extrap_max) c->extrap_max = tsc;
    return add_sat(c->last_ns, mul_shift(d, c->ext_mult));
  }
  return convert_slow(c, tsc);
}
