/* The benchmark driver in C, over the shipped libhypersdk.so (what a C user links): starts one
 * export per URL, all at once, waits for them, prints bytes and MiB/s. With --count-progress a C
 * progress callback that only counts its calls is registered (the cost of progress delivery).
 * With --trace FILE the callback writes "seconds,bytes_done" lines to FILE (throughput against
 * time, for benches/plot.py).
 *
 * usage: fetch [--options JSON] [--global JSON] [--count-progress] [--trace FILE] OUT_DIR URL...
 * (JSON options must not hold output_dir; it is added.) Exit 1 if any export did not finish. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hypersdk.h"

static atomic_ulong calls;

static void count(void *user_data, const hs_progress *p) {
  (void)user_data;
  (void)p;
  atomic_fetch_add(&calls, 1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static FILE *trace;
static double trace_t0;

static void traced(void *user_data, const hs_progress *p) {
  (void)user_data;
  fprintf(trace, "%.3f,%llu\n", now() - trace_t0, (unsigned long long)p->bytes_done);
}

int main(int argc, char **argv) {
  const char *options = "{}", *global = NULL;
  int counting = 0, i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--options") == 0 && i + 1 < argc) options = argv[++i];
    else if (strcmp(argv[i], "--global") == 0 && i + 1 < argc) global = argv[++i];
    else if (strcmp(argv[i], "--count-progress") == 0) counting = 1;
    else if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc) {
      trace = fopen(argv[++i], "w");
      if (!trace) { perror(argv[i]); return 2; }
      fprintf(trace, "seconds,bytes_done\n");
    }
    else { fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
  }
  if (argc - i < 2) {
    fprintf(stderr, "usage: fetch [--options JSON] [--global JSON] [--count-progress] [--trace FILE] OUT_DIR URL...\n");
    return 2;
  }
  const char *out = argv[i++];
  int n = argc - i;
  hs_error *err = NULL;
  if (global && hs_global_configure(global, &err) != HS_STATUS_OK) {
    fprintf(stderr, "global: %s\n", hs_error_message(err));
    return 2;
  }
  /* {"output_dir": OUT, <the rest of options>} */
  size_t len = strlen(options) + strlen(out) + 64;
  char *opts = malloc(len);
  const char *rest = strchr(options, '{');
  rest = rest ? rest + 1 : "}";
  while (*rest == ' ') rest++;
  snprintf(opts, len, "{\"output_dir\": \"%s\"%s%s", out, *rest == '}' ? "" : ", ", rest);
  hs_client *client = NULL;
  if (hs_client_new("http", "{}", &client, &err) != HS_STATUS_OK) {
    fprintf(stderr, "client: %s\n", hs_error_message(err));
    return 2;
  }
  hs_export **ex = calloc((size_t)n, sizeof *ex);
  double t0 = now();
  trace_t0 = t0;
  hs_progress_cb cb = trace ? traced : counting ? count : NULL;
  for (int k = 0; k < n; k++) {
    if (hs_export_start(client, argv[i + k], opts, cb, NULL, &ex[k], &err) !=
        HS_STATUS_OK) {
      fprintf(stderr, "start %s: %s\n", argv[i + k], hs_error_message(err));
      return 2;
    }
  }
  int failed = 0;
  unsigned long long bytes = 0;
  for (int k = 0; k < n; k++) {
    if (hs_export_wait(ex[k], -1, &err) != HS_STATUS_OK) {
      fprintf(stderr, "%s: %s\n", argv[i + k], err ? hs_error_message(err) : "failed");
      hs_error_free(err);
      err = NULL;
      failed = 1;
    }
    hs_progress p;
    if (hs_export_progress(ex[k], &p) == HS_STATUS_OK) bytes += p.bytes_total;
    hs_export_free(ex[k]);
  }
  double secs = now() - t0;
  printf("%llu bytes in %.3f s = %.1f MiB/s\n", bytes, secs, (double)bytes / secs / 1048576.0);
  if (counting) fprintf(stderr, "%lu progress callbacks\n", (unsigned long)atomic_load(&calls));
  if (trace) fclose(trace);
  hs_client_free(client);
  free(ex);
  free(opts);
  return failed;
}
