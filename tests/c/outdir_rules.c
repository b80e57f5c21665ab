/* The output folder's rules, as a C program sees them: an existing destination is never
 * replaced, one export per destination at a time (the second is refused naming the first), a
 * file that appears at the destination during an export is not replaced by the final rename,
 * names Windows forbids are refused (given) or mapped (from a URL), and the result's paths are
 * the platform's own. On Windows also: a symbolic link (a reparse point) planted at the temp
 * file's name is never written through. Portable C; tests/windows_wine.rs runs it under Wine.
 * usage: outdir_rules <base-url> <output-dir>
 *   the server holds small.bin, slow.bin (paced), CON, "dots.bin." (sic) */
#include "common.h"

static char out_dir[1024];

static void path_of(char *buf, size_t n, const char *name) {
#ifdef _WIN32
  snprintf(buf, n, "%s\\%s", out_dir, name);
#else
  snprintf(buf, n, "%s/%s", out_dir, name);
#endif
}

static int file_exists(const char *name) {
  char p[2048];
  path_of(p, sizeof p, name);
  FILE *f = fopen(p, "rb");
  if (f) fclose(f);
  return f != NULL;
}

static void write_file(const char *name, const char *text) {
  char p[2048];
  path_of(p, sizeof p, name);
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL, "cannot create %s", p);
  fputs(text, f);
  fclose(f);
}

static void expect_content(const char *name, const char *text) {
  char p[2048], buf[256] = {0};
  path_of(p, sizeof p, name);
  FILE *f = fopen(p, "rb");
  CHECK(f != NULL, "%s is gone", p);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  CHECK(n == strlen(text) && memcmp(buf, text, n) == 0, "%s was changed: \"%s\"", p, buf);
}

static hs_export *start(hs_client *c, const char *url, const char *extra) {
  char opts[2048];
  hs_error *err = NULL;
  hs_export *e = NULL;
  /* out_dir goes into JSON as given: the test passes it with forward slashes. */
  snprintf(opts, sizeof opts, "{\"output_dir\": \"%s\", \"part_size\": 65536%s%s}", out_dir, extra ? ", " : "",
           extra ? extra : "");
  hs_status s = hs_export_start(c, url, opts, NULL, NULL, &e, &err);
  CHECK(s == HS_STATUS_OK, "start %s: %s: %s", url, hs_status_name(s), err ? hs_error_message(err) : "");
  return e;
}

/* Waits for `e` and checks its status and that its message holds `needle`. */
static void expect_end(hs_export *e, hs_status want, const char *needle) {
  hs_error *err = NULL;
  hs_status s = hs_export_wait(e, -1, &err);
  CHECK(s == want, "status %s, want %s (%s)", hs_status_name(s), hs_status_name(want),
        err ? hs_error_message(err) : "");
  if (needle) {
    CHECK(err != NULL && strstr(hs_error_message(err), needle) != NULL, "message \"%s\" lacks \"%s\"",
          err ? hs_error_message(err) : "", needle);
  }
  hs_error_free(err);
}

static void print_result(const char *label, hs_export *e) {
  char *json = NULL;
  CHECK_STATUS(hs_export_result_json(e, &json, NULL), HS_STATUS_OK);
  printf("RESULT %s %s\n", label, json);
  hs_string_free(json);
}

static void expect_refused_name(hs_client *c, const char *url, const char *name) {
  char extra[256];
  snprintf(extra, sizeof extra, "\"file_name\": \"%s\"", name);
  char opts[2048];
  snprintf(opts, sizeof opts, "{\"output_dir\": \"%s\", %s}", out_dir, extra);
  hs_export *e = NULL;
  hs_error *err = NULL;
  hs_status s = hs_export_start(c, url, opts, NULL, NULL, &e, &err);
  CHECK(s == HS_STATUS_INVALID_ARGUMENT, "file_name %s: %s", name, hs_status_name(s));
  CHECK(strstr(hs_error_message(err), "Windows") != NULL, "file_name %s: %s", name, hs_error_message(err));
  hs_error_free(err);
}

int main(int argc, char **argv) {
  CHECK(argc == 3, "usage: outdir_rules <base-url> <output-dir>");
  const char *base = argv[1];
  snprintf(out_dir, sizeof out_dir, "%s", argv[2]);
  char small[512], slow[512], con[512], dots[512];
  snprintf(small, sizeof small, "%s/small.bin", base);
  snprintf(slow, sizeof slow, "%s/slow.bin", base);
  snprintf(con, sizeof con, "%s/CON", base);
  snprintf(dots, sizeof dots, "%s/dots.bin.", base);
  hs_client *c = NULL;
  CHECK_STATUS(hs_client_new("http", NULL, &c, NULL), HS_STATUS_OK);

  /* A finished export: its result names the file as the platform writes paths. */
  hs_export *e = start(c, small, NULL);
  expect_end(e, HS_STATUS_OK, NULL);
  print_result("small", e);
  hs_export_free(e);

  /* An existing destination stays (no overwrite asked). */
  e = start(c, small, NULL);
  expect_end(e, HS_STATUS_ALREADY_EXISTS, "small.bin");
  hs_export_free(e);

  /* One export per destination: the second is refused at once, naming the first's pid. */
  hs_export *first = start(c, slow, NULL);
  for (int i = 0; i < 1000 && !file_exists("slow.bin.hspart.lock"); i++) sleep_us(10000);
  CHECK(file_exists("slow.bin.hspart.lock"), "the first export never took its lock");
  hs_export *second = start(c, slow, NULL);
  expect_end(second, HS_STATUS_ALREADY_EXISTS, "another export is writing");
  hs_export_free(second);

  /* A file appearing at the destination during the export is not replaced. */
  write_file("slow.bin", "someone else's");
  expect_end(first, HS_STATUS_ALREADY_EXISTS, "appeared during the export");
  hs_export_free(first);
  expect_content("slow.bin", "someone else's");

  /* Names Windows forbids: refused when given, mapped when they come from a URL. */
  expect_refused_name(c, small, "CON");
  expect_refused_name(c, small, "nul.vmdk");
  expect_refused_name(c, small, "COM1");
  expect_refused_name(c, small, "disk.");
  expect_refused_name(c, small, "disk ");
  e = start(c, con, NULL);
  expect_end(e, HS_STATUS_OK, NULL);
  print_result("con", e);
  hs_export_free(e);
  CHECK(file_exists("_CON"), "CON from a URL was not saved as _CON");
  e = start(c, dots, NULL);
  expect_end(e, HS_STATUS_OK, NULL);
  hs_export_free(e);
  CHECK(file_exists("dots.bin"), "dots.bin. from a URL was not saved as dots.bin");

#ifdef _WIN32
  /* A symbolic link planted at the temp file's name: the export refuses it and writes nothing
   * through it (CREATE_NEW and FILE_FLAG_OPEN_REPARSE_POINT). */
  write_file("victim.txt", "precious");
  char link[2048], target[2048];
  path_of(link, sizeof link, "small2.bin.hspart");
  path_of(target, sizeof target, "victim.txt");
  /* Wine 8.0's CreateSymbolicLink is a stub that makes nothing and says it did: believe the
   * attributes, not the return value. */
  BOOL made = CreateSymbolicLinkA(link, target, 0);
  DWORD attrs = GetFileAttributesA(link);
  if (made && attrs != INVALID_FILE_ATTRIBUTES && (attrs & FILE_ATTRIBUTE_REPARSE_POINT)) {
    char extra[128];
    snprintf(extra, sizeof extra, "\"file_name\": \"small2.bin\"");
    e = start(c, small, extra);
    expect_end(e, HS_STATUS_ALREADY_EXISTS, "small2.bin.hspart");
    hs_export_free(e);
    expect_content("victim.txt", "precious");
    printf("outdir_rules: reparse point refused\n");
  } else {
    /* Said plainly: the runner decides whether this may be missing. */
    printf("NO-SYMLINK CreateSymbolicLinkA returned %d, the name's attributes are %lx\n", (int)made,
           (unsigned long)attrs);
  }
#endif
  hs_client_free(c);
  printf("outdir_rules: ok\n");
  return 0;
}
