/* Helpers shared by the C tests: checks that abort with a message, and a tracker that verifies
 * the progress-callback contract from inside the callbacks. */
#ifndef HS_TEST_COMMON_H
#define HS_TEST_COMMON_H

#ifndef _WIN32
#define _DEFAULT_SOURCE
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
/* Windows (MinGW-w64; run under Wine by tests/windows_wine.rs): no unistd.h, no fork. */
#include <windows.h>
#else
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "hypersdk.h"

/* Sleeps at least `us` microseconds (Windows sleeps whole milliseconds, at least one). */
static inline void sleep_us(unsigned us) {
#ifdef _WIN32
  Sleep(us < 1000 ? 1 : us / 1000);
#else
  usleep(us);
#endif
}

#define CHECK(cond, ...)                                                         \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);  \
      fprintf(stderr, __VA_ARGS__);                                              \
      fprintf(stderr, "\n");                                                     \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

#define CHECK_STATUS(call, want)                                                 \
  do {                                                                           \
    hs_status got_ = (call);                                                     \
    CHECK(got_ == (want), "%s returned %s, want %s", #call,                      \
          hs_status_name(got_), hs_status_name(want));                           \
  } while (0)

/* What one export's callbacks have seen. */
typedef struct {
  atomic_int in_call;       /* >0 while a callback runs: must never reach 2 */
  atomic_int overlaps;
  atomic_int terminal_calls;
  atomic_int calls_after_terminal;
  atomic_int backwards;
  uint64_t last_done;
  int last_phase;
  int saw_downloading;
  hs_export *export_handle; /* set after start; read inside callbacks */
} tracker;

static inline void tracker_on(tracker *t, const hs_progress *p) {
  if (atomic_fetch_add(&t->in_call, 1) != 0) atomic_fetch_add(&t->overlaps, 1);
  sleep_us(100); /* widen the window in which an overlap would show */
  if (atomic_load(&t->terminal_calls) > 0) atomic_fetch_add(&t->calls_after_terminal, 1);
  if (p->bytes_done < t->last_done) atomic_fetch_add(&t->backwards, 1);
  if (p->bytes_total != 0 && p->bytes_total < p->bytes_done) atomic_fetch_add(&t->backwards, 1);
  t->last_done = p->bytes_done;
  t->last_phase = p->phase;
  if (p->phase == HS_PHASE_DOWNLOADING) t->saw_downloading = 1;
  if (p->phase == HS_PHASE_DONE || p->phase == HS_PHASE_FAILED || p->phase == HS_PHASE_CANCELLED)
    atomic_fetch_add(&t->terminal_calls, 1);
  atomic_fetch_sub(&t->in_call, 1);
}

static inline void tracker_check(const tracker *t, hs_phase want_terminal) {
  CHECK(atomic_load(&t->overlaps) == 0, "callbacks overlapped %d times", atomic_load(&t->overlaps));
  CHECK(atomic_load(&t->terminal_calls) == 1, "terminal calls: %d", atomic_load(&t->terminal_calls));
  CHECK(atomic_load(&t->calls_after_terminal) == 0, "calls after terminal");
  CHECK(atomic_load(&t->backwards) == 0, "bytes went backwards");
  CHECK(t->last_phase == (int)want_terminal, "last phase %s, want %s", hs_phase_name(t->last_phase),
        hs_phase_name(want_terminal));
}

#endif
