/* Cancel from inside a progress callback, and use the pull functions there; waiting on the same
 * export from inside its callback must refuse instead of deadlocking.
 * usage: cancel_in_callback <url> <output-dir> */
#include "common.h"

typedef struct {
  tracker t;
  atomic_int cancelled;
  atomic_int wait_refused;
  atomic_int pending_seen;
} ctx;

static void on_progress(void *user_data, const hs_progress *p) {
  ctx *c = user_data;
  tracker_on(&c->t, p);
  hs_export *e = c->t.export_handle;
  if (e == NULL) return;
  hs_progress snap;
  if (hs_export_progress(e, &snap) != HS_STATUS_OK) exit(2);
  if (p->phase == HS_PHASE_CANCELLED || p->phase == HS_PHASE_DONE || p->phase == HS_PHASE_FAILED) {
    char *json = NULL;
    /* The result is there in the terminal call. */
    if (hs_export_result_json(e, &json, NULL) != HS_STATUS_OK || json == NULL) exit(3);
    hs_string_free(json);
    return;
  }
  char *json = NULL;
  /* Usually pending here; but the result is set just before the terminal phase, so a reading
     delivered in between may already get it (and must free it). */
  if (hs_export_result_json(e, &json, NULL) == HS_STATUS_PENDING && json == NULL) atomic_store(&c->pending_seen, 1);
  hs_string_free(json);
  hs_error *err = NULL;
  if (hs_export_wait(e, 1000, &err) == HS_STATUS_INVALID_STATE) atomic_store(&c->wait_refused, 1);
  hs_error_free(err);
  if (p->bytes_done > 0 && !atomic_exchange(&c->cancelled, 1)) {
    if (hs_export_cancel(e) != HS_STATUS_OK) exit(4);
    if (hs_export_cancel(e) != HS_STATUS_OK) exit(5); /* idempotent */
  }
}

int main(int argc, char **argv) {
  CHECK(argc == 3, "usage: cancel_in_callback <url> <output-dir>");
  hs_client *client = NULL;
  CHECK_STATUS(hs_client_new("http", NULL, &client, NULL), HS_STATUS_OK);
  ctx c;
  memset(&c, 0, sizeof c);
  char opts[1024];
  snprintf(opts, sizeof opts, "{\"output_dir\": \"%s\", \"part_size\": 65536, \"progress_interval_ms\": 5}", argv[2]);
  hs_export *e = NULL;
  /* The handle is published before the first callback can use it: the callback waits for it. */
  CHECK_STATUS(hs_export_start(client, argv[1], opts, on_progress, &c, &e, NULL), HS_STATUS_OK);
  c.t.export_handle = e;
  hs_error *err = NULL;
  hs_status s = hs_export_wait(e, -1, &err);
  CHECK(s == HS_STATUS_CANCELLED, "wait: %s", hs_status_name(s));
  CHECK(hs_error_code(err) == HS_STATUS_CANCELLED, "error code %s", hs_status_name(hs_error_code(err)));
  hs_error_free(err);
  tracker_check(&c.t, HS_PHASE_CANCELLED);
  CHECK(atomic_load(&c.cancelled), "never cancelled");
  CHECK(atomic_load(&c.wait_refused), "wait inside the callback was not refused");
  CHECK(atomic_load(&c.pending_seen), "result JSON was not pending during the export");
  char *json = NULL;
  CHECK_STATUS(hs_export_result_json(e, &json, NULL), HS_STATUS_OK);
  CHECK(strstr(json, "\"status\":\"cancelled\"") != NULL, "%s", json);
  hs_string_free(json);
  hs_export_free(e);
  hs_client_free(client);
  printf("cancel_in_callback: ok\n");
  return 0;
}
