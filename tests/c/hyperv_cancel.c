/* A Hyper-V export cancelled mid-way from C, paced by the test that runs it (so it can look at
 * the processes between the steps): starts the export (PowerShell found as the platform finds
 * it), waits for bytes and for <go-file>, cancels, waits for the CANCELLED end, prints
 * "cancelled", then waits for <done-file> before exiting (its own exit would close the job
 * object's handle too, which must not be what ends PowerShell's children).
 * usage: hyperv_cancel <vm> <output-dir> <go-file> <done-file> */
#include "common.h"

static int exists(const char *p) {
  FILE *f = fopen(p, "rb");
  if (f) fclose(f);
  return f != NULL;
}

int main(int argc, char **argv) {
  CHECK(argc == 5, "usage: hyperv_cancel <vm> <output-dir> <go-file> <done-file>");
  hs_client *c = NULL;
  hs_error *err = NULL;
  hs_status s = hs_client_new("hyperv", "{}", &c, &err);
  CHECK(s == HS_STATUS_OK, "client: %s: %s", hs_status_name(s), err ? hs_error_message(err) : "");
  char opts[1024];
  snprintf(opts, sizeof opts, "{\"output_dir\": \"%s\", \"poll_file_interval_ms\": 20}", argv[2]);
  hs_export *e = NULL;
  s = hs_export_start(c, argv[1], opts, NULL, NULL, &e, &err);
  CHECK(s == HS_STATUS_OK, "start: %s: %s", hs_status_name(s), err ? hs_error_message(err) : "");
  hs_progress p;
  int i = 0;
  for (; i < 6000; i++) {
    CHECK_STATUS(hs_export_progress(e, &p), HS_STATUS_OK);
    CHECK(p.phase != HS_PHASE_DONE && p.phase != HS_PHASE_FAILED, "ended before the cancel: %s",
          hs_phase_name(p.phase));
    if (p.bytes_done > 0 && exists(argv[3])) break;
    sleep_us(10000);
  }
  CHECK(i < 6000, "no bytes or no go within a minute: phase %s, %llu bytes, go %s", hs_phase_name(p.phase),
        (unsigned long long)p.bytes_done, exists(argv[3]) ? "there" : "missing");
  CHECK_STATUS(hs_export_cancel(e), HS_STATUS_OK);
  s = hs_export_wait(e, -1, &err);
  CHECK(s == HS_STATUS_CANCELLED, "wait: %s: %s", hs_status_name(s), err ? hs_error_message(err) : "");
  hs_error_free(err);
  printf("cancelled\n");
  fflush(stdout);
  for (i = 0; i < 6000 && !exists(argv[4]); i++) sleep_us(10000);
  hs_export_free(e);
  hs_client_free(c);
  return 0;
}
