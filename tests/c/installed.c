/* A program as a user builds it against an installed hypersdk (pkg-config, CMake, static or
 * shared; tests/install.rs): checks that the library it runs with is the header's version, then
 * downloads URL into DIR and prints "ok <version>". usage: installed URL DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypersdk.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: installed URL DIR\n");
    return 2;
  }
  unsigned int v = hs_version_number();
  if (v / 10000 != HS_VERSION_MAJOR || v < HS_VERSION_NUMBER) {
    fprintf(stderr, "library %s is not compatible with header %d.%d.%d\n", hs_version(),
            HS_VERSION_MAJOR, HS_VERSION_MINOR, HS_VERSION_PATCH);
    return 1;
  }
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", HS_VERSION_MAJOR, HS_VERSION_MINOR, HS_VERSION_PATCH);
  if (strcmp(hs_version(), want) != 0) {
    fprintf(stderr, "hs_version() %s, header %s\n", hs_version(), want);
    return 1;
  }
  hs_client *client = NULL;
  hs_error *err = NULL;
  if (hs_client_new("http", "{}", &client, &err) != HS_STATUS_OK) {
    fprintf(stderr, "client: %s\n", hs_error_message(err));
    return 1;
  }
  char opts[4096];
  snprintf(opts, sizeof opts, "{\"output_dir\": \"%s\"}", argv[2]);
  hs_export *ex = NULL;
  if (hs_export_start(client, argv[1], opts, NULL, NULL, &ex, &err) != HS_STATUS_OK) {
    fprintf(stderr, "start: %s\n", hs_error_message(err));
    return 1;
  }
  hs_status s = hs_export_wait(ex, -1, &err);
  if (s != HS_STATUS_OK) {
    fprintf(stderr, "export: %s: %s\n", hs_status_name(s), err ? hs_error_message(err) : "");
    return 1;
  }
  hs_export_free(ex);
  hs_client_free(client);
  printf("ok %s\n", hs_version());
  return 0;
}
