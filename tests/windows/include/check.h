/* check.h: the part of Check's API that tests/unit uses, for the Windows
 * build of the unit tests (make windows), where Check itself is not built.
 *
 * The same test sources compile against it unchanged.  Unlike Check it
 * does not fork: a failed assertion ends its test with longjmp (the
 * fixture's teardown still runs) and the runner goes on with the next
 * test; a crash ends the whole program, which the driver reports as a
 * failure.  Loop tests, checked fixtures and the output summary behave as
 * Check's do; timeouts are not enforced. */
#ifndef TRACED_WIN_CHECK_H
#define TRACED_WIN_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum print_output { CK_SILENT, CK_MINIMAL, CK_NORMAL, CK_VERBOSE };

typedef void (*tr_ck_fn)(int);
typedef void (*SFun)(void);

typedef struct tr_ck_test {
  const char *name;
  tr_ck_fn fn;
  int start, end;
  struct tr_ck_test *next;
} tr_ck_test;

typedef struct TCase {
  const char *name;
  tr_ck_test *tests, **tail;
  SFun setup, teardown;
  struct TCase *next;
} TCase;

typedef struct Suite {
  const char *name;
  TCase *tcases, **tail;
} Suite;

typedef struct SRunner {
  Suite *suite;
  int run, failed;
} SRunner;

#define START_TEST(name) static void name(int _i __attribute__((unused)))
#define END_TEST

static jmp_buf tr_ck_jmp;

__attribute__((unused)) static void tr_ck_oom(void) {
  fputs("check: out of memory\n", stderr);
  exit(2);
}

static inline Suite *suite_create(const char *name) {
  Suite *s = calloc(1, sizeof(*s));
  if (s == NULL) tr_ck_oom();
  s->name = name;
  s->tail = &s->tcases;
  return s;
}

static inline TCase *tcase_create(const char *name) {
  TCase *tc = calloc(1, sizeof(*tc));
  if (tc == NULL) tr_ck_oom();
  tc->name = name;
  tc->tail = &tc->tests;
  return tc;
}

static inline void suite_add_tcase(Suite *s, TCase *tc) {
  *s->tail = tc;
  s->tail = &tc->next;
}

static inline void tr_ck_add(TCase *tc, const char *name, tr_ck_fn fn,
                             int start, int end) {
  tr_ck_test *t = calloc(1, sizeof(*t));
  if (t == NULL) tr_ck_oom();
  t->name = name;
  t->fn = fn;
  t->start = start;
  t->end = end;
  *tc->tail = t;
  tc->tail = &t->next;
}

#define tcase_add_test(tc, tf) tr_ck_add((tc), #tf, (tf), 0, 1)
#define tcase_add_loop_test(tc, tf, s, e) tr_ck_add((tc), #tf, (tf), (s), (e))

static inline void tcase_add_checked_fixture(TCase *tc, SFun setup,
                                             SFun teardown) {
  tc->setup = setup;
  tc->teardown = teardown;
}

static inline void tcase_set_timeout(TCase *tc, double seconds) {
  (void)tc;
  (void)seconds;
}

static inline SRunner *srunner_create(Suite *s) {
  SRunner *sr = calloc(1, sizeof(*sr));
  if (sr == NULL) tr_ck_oom();
  sr->suite = s;
  return sr;
}

__attribute__((format(printf, 3, 4), noreturn, unused)) static void tr_ck_fail(
    const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  longjmp(tr_ck_jmp, 1);
}

/* Runs one iteration of a test after the fixture's setup: 1 when it
 * passed, 0 when an assertion failed (longjmp lands here). */
static inline int tr_ck_try(SFun setup, tr_ck_fn fn, int i) {
  if (setjmp(tr_ck_jmp) != 0) return 0;
  if (setup != NULL) setup();
  fn(i);
  return 1;
}

static inline void srunner_run_all(SRunner *sr, enum print_output mode) {
  for (TCase *tc = sr->suite->tcases; tc != NULL; tc = tc->next) {
    for (tr_ck_test *t = tc->tests; t != NULL; t = t->next) {
      for (int i = t->start; i < t->end; i++) {
        sr->run++;
        int ok = tr_ck_try(tc->setup, t->fn, i);
        if (tc->teardown != NULL) tc->teardown();
        if (!ok) {
          sr->failed++;
          fprintf(stderr, "  in %s:%s:%s (iteration %d): Failed\n",
                  sr->suite->name, tc->name, t->name, i);
        } else if (mode == CK_VERBOSE) {
          printf("%s:%s:%s: Passed\n", sr->suite->name, tc->name, t->name);
        }
      }
    }
  }
  if (mode != CK_SILENT)
    printf("%d%%: Checks: %d, Failures: %d, Errors: 0\n",
           sr->run ? 100 * (sr->run - sr->failed) / sr->run : 100, sr->run,
           sr->failed);
}

static inline int srunner_ntests_failed(SRunner *sr) { return sr->failed; }

static inline void srunner_free(SRunner *sr) {
  Suite *s = sr->suite;
  for (TCase *tc = s->tcases, *ntc; tc != NULL; tc = ntc) {
    ntc = tc->next;
    for (tr_ck_test *t = tc->tests, *nt; t != NULL; t = nt) {
      nt = t->next;
      free(t);
    }
    free(tc);
  }
  free(s);
  free(sr);
}

#define ck_assert_msg(expr, ...) \
  ((expr) ? (void)0 : tr_ck_fail(__FILE__, __LINE__, __VA_ARGS__))
#define ck_assert(expr) ck_assert_msg(expr, "Assertion '%s' failed", #expr)
#define ck_abort_msg(...) tr_ck_fail(__FILE__, __LINE__, __VA_ARGS__)

#define TR_CK_CMP(T, F, X, OP, Y)                                           \
  do {                                                                      \
    T _x = (T)(X);                                                          \
    T _y = (T)(Y);                                                          \
    ck_assert_msg(_x OP _y, "Assertion '%s' failed: %s == " F ", %s == " F, \
                  #X " " #OP " " #Y, #X, _x, #Y, _y);                       \
  } while (0)
#define ck_assert_int_eq(X, Y) TR_CK_CMP(long long, "%lld", X, ==, Y)
#define ck_assert_int_ne(X, Y) TR_CK_CMP(long long, "%lld", X, !=, Y)
#define ck_assert_int_lt(X, Y) TR_CK_CMP(long long, "%lld", X, <, Y)
#define ck_assert_int_le(X, Y) TR_CK_CMP(long long, "%lld", X, <=, Y)
#define ck_assert_int_gt(X, Y) TR_CK_CMP(long long, "%lld", X, >, Y)
#define ck_assert_int_ge(X, Y) TR_CK_CMP(long long, "%lld", X, >=, Y)
#define ck_assert_uint_eq(X, Y) TR_CK_CMP(unsigned long long, "%llu", X, ==, Y)
#define ck_assert_uint_ne(X, Y) TR_CK_CMP(unsigned long long, "%llu", X, !=, Y)
#define ck_assert_uint_lt(X, Y) TR_CK_CMP(unsigned long long, "%llu", X, <, Y)
#define ck_assert_uint_le(X, Y) TR_CK_CMP(unsigned long long, "%llu", X, <=, Y)
#define ck_assert_uint_gt(X, Y) TR_CK_CMP(unsigned long long, "%llu", X, >, Y)
#define ck_assert_uint_ge(X, Y) TR_CK_CMP(unsigned long long, "%llu", X, >=, Y)
#define ck_assert_ptr_eq(X, Y) TR_CK_CMP(const void *, "%p", X, ==, Y)
#define ck_assert_ptr_ne(X, Y) TR_CK_CMP(const void *, "%p", X, !=, Y)
#define ck_assert_ptr_null(X) ck_assert_ptr_eq(X, NULL)
#define ck_assert_ptr_nonnull(X) ck_assert_ptr_ne(X, NULL)
#define ck_assert_str_eq(X, Y)                                             \
  do {                                                                     \
    const char *_x = (X), *_y = (Y);                                       \
    ck_assert_msg(_x != NULL && _y != NULL && strcmp(_x, _y) == 0,         \
                  "Assertion '%s == %s' failed: \"%s\" vs \"%s\"", #X, #Y, \
                  _x ? _x : "(null)", _y ? _y : "(null)");                 \
  } while (0)
#define ck_assert_mem_eq(X, Y, L)                                    \
  ck_assert_msg(memcmp((X), (Y), (L)) == 0, "Assertion '%s' failed", \
                "memcmp(" #X ", " #Y ", " #L ") == 0")

#endif
