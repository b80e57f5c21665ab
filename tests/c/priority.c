/* hs_export_set_priority: with one slot, an export queued after another and raised above it is
 * let in first; one that has its slot is not queued (HS_STATUS_INVALID_STATE).
 * usage: priority <slow-url> <output-dir> */
#include "common.h"

static hs_phase phase_of(hs_export *e) {
  hs_progress p;
  CHECK_STATUS(hs_export_progress(e, &p), HS_STATUS_OK);
  return p.phase;
}

static hs_export *start(hs_client *client, const char *url, const char *dir, const char *sub) {
  char opts[1024];
  snprintf(opts, sizeof opts, "{\"output_dir\": \"%s\", \"file_name\": \"%s.bin\"}", dir, sub);
  hs_export *e = NULL;
  hs_error *err = NULL;
  hs_status s = hs_export_start(client, url, opts, NULL, NULL, &e, &err);
  CHECK(s == HS_STATUS_OK, "start %s: %s", sub, err ? hs_error_message(err) : "");
  return e;
}

static void cancel_and_wait(hs_export *e) {
  hs_export_cancel(e);
  hs_status s = hs_export_wait(e, -1, NULL);
  CHECK(s == HS_STATUS_CANCELLED || s == HS_STATUS_OK, "wait: %s", hs_status_name(s));
  hs_export_free(e);
}

int main(int argc, char **argv) {
  CHECK(argc == 3, "usage: priority <slow-url> <output-dir>");
  const char *url = argv[1], *out = argv[2];
  hs_error *err = NULL;
  CHECK_STATUS(hs_global_configure("{\"max_concurrent_exports\": 1}", &err), HS_STATUS_OK);
  hs_client *client = NULL;
  CHECK_STATUS(hs_client_new("http", "{}", &client, &err), HS_STATUS_OK);

  CHECK_STATUS(hs_export_set_priority(NULL, 1), HS_STATUS_INVALID_ARGUMENT);
  hs_export *a = start(client, url, out, "a");
  while (phase_of(a) == HS_PHASE_QUEUED) sleep_us(5000);
  CHECK_STATUS(hs_export_set_priority(a, 5), HS_STATUS_INVALID_STATE);
  hs_export *b = start(client, url, out, "b");
  hs_export *c = start(client, url, out, "c");
  CHECK_STATUS(hs_export_set_priority(c, 3), HS_STATUS_OK);
  cancel_and_wait(a);
  /* The slot goes to c (raised), which holds it (paced download) while b still waits. */
  while (phase_of(c) == HS_PHASE_QUEUED) sleep_us(5000);
  CHECK(phase_of(b) == HS_PHASE_QUEUED, "b was let in before c: %s", hs_phase_name(phase_of(b)));
  CHECK_STATUS(hs_export_set_priority(c, -3), HS_STATUS_INVALID_STATE);
  cancel_and_wait(c);
  cancel_and_wait(b);
  hs_client_free(client);
  printf("priority: a raised export was let in first\n");
  return 0;
}
