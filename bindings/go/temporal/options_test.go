package temporal

import (
	"errors"
	"slices"
	"strings"
	"testing"

	hypersdk "github.com/hypersdk/hypersdk/bindings/go"
	"go.temporal.io/sdk/temporal"
)

// wantRefused checks err is the non-retryable refusal that names the option and the account.
func wantRefused(t *testing.T, err error, option, account string) {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != "invalid_argument" {
		t.Fatalf("option %s: want a non-retryable invalid_argument error, got %v", option, err)
	}
	if !strings.Contains(err.Error(), `"`+option+`"`) || !strings.Contains(err.Error(), `"`+account+`"`) {
		t.Fatalf("option %s on %s: the error does not name both: %v", option, account, err)
	}
}

// A request may set only the account's request options, and none the account fixes: where the
// cloud writes, what is deleted, replaced or adopted is the worker's account's to say.
func TestRequestsSetOnlyHarmlessOptions(t *testing.T) {
	aws := Account{Provider: "aws", Options: map[string]any{"s3_bucket": "corp-exports", "s3_prefix": "waves/"}}
	for opt, v := range map[string]any{"s3_bucket": "attacker", "s3_prefix": "x/", "overwrite": true,
		"delete_s3_object_after_download": true, "role_name": "admin", "reuse_export_task": false,
		"file_mode": "0666", "output_dir": "/etc", "no_such_option": 1} {
		_, err := exportOptions("aws-prod", aws, map[string]any{"part_size": 1 << 20, opt: v}, "d")
		wantRefused(t, err, opt, "aws-prod")
	}
	gcp := Account{Provider: "gcp"}
	for _, opt := range []string{"bucket", "prefix", "reuse_object", "delete_object_after_download"} {
		_, err := exportOptions("gcp-prod", gcp, map[string]any{opt: "x"}, "d")
		wantRefused(t, err, opt, "gcp-prod")
	}
	_, err := exportOptions("hv", Account{Provider: "hyperv"}, map[string]any{"host_output_dir": `\\attacker\share`}, "d")
	wantRefused(t, err, "host_output_dir", "hv")
	_, err = exportOptions("web", Account{Provider: "http"}, map[string]any{"headers": map[string]any{"Authorization": "x"}}, "d")
	wantRefused(t, err, "headers", "web")

	// The harmless ones pass, and the account's fixed options are added.
	got, err := exportOptions("aws-prod", aws, map[string]any{"disk_image_format": "vhd", "max_bytes_per_second": 1000}, "d")
	if err != nil {
		t.Fatal(err)
	}
	if got["s3_bucket"] != "corp-exports" || got["s3_prefix"] != "waves/" || got["disk_image_format"] != "vhd" ||
		got["max_bytes_per_second"] != 1000 || len(got) != 4 {
		t.Fatalf("options: %v", got)
	}
	// An account may widen or narrow the list.
	own := Account{Provider: "http", RequestOptions: []string{"overwrite"}}
	if _, err := exportOptions("web", own, map[string]any{"overwrite": true}, "d"); err != nil {
		t.Fatal(err)
	}
	_, err = exportOptions("web", own, map[string]any{"part_size": 1}, "d")
	wantRefused(t, err, "part_size", "web")
	// A Hyper-V account's host folder is the output root as the host sees it; each export's
	// is its dest under it, as output_dir is on the worker.
	for base, want := range map[string]string{`\\nas\exports\`: `\\nas\exports\wave1\vm1`, "/mnt/exports": "/mnt/exports/wave1/vm1"} {
		hv := Account{Provider: "hyperv", Options: map[string]any{"host_output_dir": base}}
		got, err := exportOptions("hv", hv, map[string]any{"export_type": "full"}, "wave1/vm1")
		if err != nil || got["host_output_dir"] != want {
			t.Errorf("host_output_dir %s: %v, %v; want %s", base, got["host_output_dir"], err, want)
		}
	}
	if err := CheckAccount("x", Account{Provider: "http", Options: map[string]any{"output_dir": "/"}}); err == nil {
		t.Error("an account that sets output_dir was accepted")
	}
	if err := CheckAccount("x", Account{Provider: "http", RequestOptions: []string{"output_dir"}}); err == nil {
		t.Error("an account that lets requests set output_dir was accepted")
	}
}

// Every option of the library's schema (hs_provider_info) is placed on exactly one side, and
// nothing is placed that the library does not have: an option the library adds is refused in
// requests until someone decides where it belongs.
func TestEveryLibraryOptionIsPlaced(t *testing.T) {
	s, err := hypersdk.ProviderInfo()
	if err != nil {
		t.Fatal(err)
	}
	check := func(provider string, keys []string) {
		t.Helper()
		for _, k := range keys {
			req := slices.Contains(requestOptions[provider], k)
			_, acct := accountOptions[provider][k]
			if req == acct {
				t.Errorf("%s option %q: on the request side %v, on the account side %v; want exactly one", provider, k, req, acct)
			}
		}
		placed := slices.Clone(requestOptions[provider])
		for k := range accountOptions[provider] {
			placed = append(placed, k)
		}
		for _, k := range placed {
			if !slices.Contains(keys, k) {
				t.Errorf("%s option %q is placed but the library has no such option", provider, k)
			}
		}
	}
	var common []string
	for _, o := range s.CommonOptions {
		common = append(common, o.Key)
	}
	check("", common)
	for _, p := range s.Providers {
		if !p.BuiltIn {
			continue
		}
		if _, ok := requestOptions[p.Name]; !ok {
			t.Errorf("provider %s has no request options decided", p.Name)
		}
		check(p.Name, p.OptionKeys)
	}
}

// An http account's headers (a token) go with every request: a request may name only the
// account's allowed origins, in its source and in its files.
func TestAnHttpAccountsHeadersGoOnlyToItsAllowedOrigins(t *testing.T) {
	acct := Account{Provider: "http", Config: []byte(`{"headers": {"Authorization": "Bearer t"}}`),
		AllowedOrigins: []string{"https://downloads.corp.example"}}
	if err := checkOrigins("web", acct, "https://downloads.corp.example/a.img", nil); err != nil {
		t.Fatalf("an allowed origin was refused: %v", err)
	}
	for _, src := range []string{"https://attacker.example/x", "http://downloads.corp.example/a.img",
		"https://downloads.corp.example.attacker.example/a"} {
		wantRefusedText(t, checkOrigins("web", acct, src, nil), "web")
	}
	files := map[string]any{"files": []any{map[string]any{"url": "https://attacker.example/b"}}}
	wantRefusedText(t, checkOrigins("web", acct, "", files), "web")
	noHeaders := Account{Provider: "http", Config: []byte(`{}`)}
	if err := checkOrigins("open", noHeaders, "https://anywhere.example/x", nil); err != nil {
		t.Fatalf("an account without headers was limited: %v", err)
	}
	acct.AllowedOrigins = nil
	wantRefusedText(t, checkOrigins("web", acct, "https://downloads.corp.example/a.img", nil), "web")
}

func wantRefusedText(t *testing.T, err error, account string) {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || !strings.Contains(err.Error(), `"`+account+`"`) {
		t.Fatalf("want a non-retryable refusal naming %s, got %v", account, err)
	}
}
