/* Several exports at once through the C ABI; every callback checks the contract: never two
 * calls at once per export, bytes never backwards, exactly one terminal call, none after it.
 * usage: concurrent <base-url> <file-count> <output-dir> */
#include "common.h"

static void on_progress(void *user_data, const hs_progress *p) { tracker_on((tracker *)user_data, p); }

int main(int argc, char **argv) {
  CHECK(argc == 4, "usage: concurrent <base-url> <count> <output-dir>");
  const char *base = argv[1];
  int n = atoi(argv[2]);
  const char *out = argv[3];
  CHECK(n > 0 && n <= 64, "count");

  hs_client *client = NULL;
  hs_error *err = NULL;
  CHECK_STATUS(hs_client_new("http", "{}", &client, &err), HS_STATUS_OK);
  CHECK(err == NULL, "err set on success");

  tracker *t = calloc((size_t)n, sizeof(tracker));
  hs_export **ex = calloc((size_t)n, sizeof(hs_export *));
  char url[512], opts[1024];
  for (int i = 0; i < n; i++) {
    snprintf(url, sizeof url, "%s/file%d.bin", base, i);
    snprintf(opts, sizeof opts,
             "{\"output_dir\": \"%s\", \"part_size\": 262144, \"progress_interval_ms\": 10}", out);
    CHECK_STATUS(hs_export_start(client, url, opts, on_progress, &t[i], &ex[i], &err), HS_STATUS_OK);
  }
  /* The client may go while its exports run. */
  hs_client_free(client);

  for (int i = 0; i < n; i++) {
    hs_status s = hs_export_wait(ex[i], -1, &err);
    CHECK(s == HS_STATUS_OK, "export %d: %s: %s", i, hs_status_name(s), err ? hs_error_message(err) : "");
    tracker_check(&t[i], HS_PHASE_DONE);
    CHECK(t[i].saw_downloading, "export %d never reported downloading", i);

    hs_progress p;
    CHECK_STATUS(hs_export_progress(ex[i], &p), HS_STATUS_OK);
    CHECK(p.phase == HS_PHASE_DONE && p.bytes_done == p.bytes_total && p.bytes_total > 0,
          "pull after end: phase %s %llu/%llu", hs_phase_name(p.phase), (unsigned long long)p.bytes_done,
          (unsigned long long)p.bytes_total);
    CHECK(p.file_index == 1 && p.file_count == 1, "file index %u/%u", p.file_index, p.file_count);

    char *json = NULL;
    CHECK_STATUS(hs_export_result_json(ex[i], &json, &err), HS_STATUS_OK);
    CHECK(strstr(json, "\"status\":\"done\"") != NULL, "result: %s", json);
    hs_string_free(json);
    hs_export_free(ex[i]);
  }
  free(t);
  free(ex);
  printf("concurrent: %d exports ok\n", n);
  return 0;
}
