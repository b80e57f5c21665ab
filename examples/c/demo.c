/* hypersdk demo: several downloads at once with live progress.
 * usage: demo <output-dir> <url>...
 * Progress is drawn from the pull API (hs_export_progress) on the main thread; the callback
 * only reports phase changes and the end. */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hypersdk.h"

static void on_progress(void *user_data, const hs_progress *p) {
  int *last_phase = user_data;
  if ((int)p->phase != *last_phase) {
    *last_phase = (int)p->phase;
    if (p->phase == HS_PHASE_DONE || p->phase == HS_PHASE_FAILED || p->phase == HS_PHASE_CANCELLED)
      fprintf(stderr, "  [%s] %s\n", p->file_name, hs_phase_name(p->phase));
  }
}

static void human(double v, char *out, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (v >= 1024 && i < 4) { v /= 1024; i++; }
  snprintf(out, n, "%.1f %s", v, u[i]);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: demo <output-dir> <url>...\n");
    return 2;
  }
  int n = argc - 2;
  printf("hypersdk %s: %d exports into %s\n", hs_version(), n, argv[1]);
  hs_client *client = NULL;
  hs_error *err = NULL;
  if (hs_client_new("http", "{}", &client, &err) != HS_STATUS_OK) {
    fprintf(stderr, "client: %s\n", hs_error_message(err));
    return 1;
  }
  hs_export **ex = calloc((size_t)n, sizeof *ex);
  int *phases = calloc((size_t)n, sizeof *phases);
  char opts[2048];
  snprintf(opts, sizeof opts, "{\"output_dir\": \"%s\", \"overwrite\": true}", argv[1]);
  for (int i = 0; i < n; i++) {
    phases[i] = -1;
    if (hs_export_start(client, argv[i + 2], opts, on_progress, &phases[i], &ex[i], &err) != HS_STATUS_OK) {
      fprintf(stderr, "start %s: %s\n", argv[i + 2], hs_error_message(err));
      return 1;
    }
  }
  int running = n, first = 1;
  while (running > 0) {
    if (!first) printf("\033[%dA", n);
    first = 0;
    running = 0;
    for (int i = 0; i < n; i++) {
      hs_progress p;
      hs_export_progress(ex[i], &p);
      if (hs_export_wait(ex[i], 0, NULL) == HS_STATUS_PENDING) running++;
      double pct = p.bytes_total ? 100.0 * (double)p.bytes_done / (double)p.bytes_total : 0;
      char done[32], total[32], rate[32];
      human((double)p.bytes_done, done, sizeof done);
      human((double)p.bytes_total, total, sizeof total);
      human(p.rate_bytes_per_sec, rate, sizeof rate);
      int bar = (int)(pct / 5);
      printf("\033[2K%-12s %-18s [%.*s%*s] %5.1f%% %10s / %-10s %10s/s  ETA %4.0fs\n", p.file_name[0] ? p.file_name : "-",
             hs_phase_name(p.phase), bar, "####################", 20 - bar, "", pct, done, total, rate,
             p.eta_seconds < 0 ? 0 : p.eta_seconds);
    }
    fflush(stdout);
    if (running) usleep(200 * 1000);
  }
  int failed = 0;
  for (int i = 0; i < n; i++) {
    char *json = NULL;
    hs_status s = hs_export_wait(ex[i], -1, &err);
    if (s != HS_STATUS_OK) {
      failed++;
      fprintf(stderr, "export %d: %s: %s\n", i + 1, hs_status_name(s), hs_error_message(err));
      hs_error_free(err);
      err = NULL;
    }
    if (hs_export_result_json(ex[i], &json, NULL) == HS_STATUS_OK) printf("%s\n", json);
    hs_string_free(json);
    hs_export_free(ex[i]);
  }
  hs_client_free(client);
  free(ex);
  free(phases);
  return failed ? 1 : 0;
}
