package temporal

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"go.temporal.io/sdk/temporal"
)

// Which export options a wave request may set. A wave author holds no credentials, by design;
// the options that decide where the cloud writes a disk image, what is deleted or replaced,
// what is adopted, which identity or headers the cloud calls carry, or who may read the files
// are therefore the account's (set on the worker, in Account.Options), never the request's.
//
// The lists are decided from the library's option schema (hypersdk.ProviderInfo, the C ABI's
// hs_provider_info): every common option and every provider option is in exactly one of
// requestOptions or accountOptions (a test holds them to the schema, so an option the library
// adds must be placed here before the tests pass again). docs/SCALE.md gives the table.
var (
	// requestOptions are the options a request may set when its account does not name its own
	// list (Account.RequestOptions): they tune how this export runs or shape its files inside
	// its own destination folder. "" holds the common options.
	requestOptions = map[string][]string{
		"": {"keep_partial", "part_size", "max_part_size", "parts_in_flight", "max_parts_in_flight",
			"parallel_files", "max_bytes_per_second", "progress_interval_ms", "priority", "max_attempts",
			"stall_timeout_ms", "retry_base_delay_ms", "poll_file_interval_ms", "verify_resumed"},
		"aws": {"target_environment", "disk_image_format", "container_format", "timeout_secs",
			"poll_interval_ms", "file_name", "max_block_requests", "incremental_output"},
		"azure": {"resource_group", "snapshot_attached", "access_duration_secs", "file_format",
			"timeout_secs", "poll_interval_ms", "file_name", "page_ranges_segment_mib", "incremental_output"},
		"gcp":     {"project", "zone", "format", "timeout_secs", "poll_interval_ms", "file_name"},
		"http":    {"files", "file_name", "sha256", "md5", "crc32c", "size"},
		"hyperv":  {"export_type", "include_snapshots", "capture_live_state", "folder_name", "verify", "timeout_secs"},
		"vsphere": {"format", "snapshot", "quiesce", "parallel_disks", "name", "lease_wait_timeout_ms", "manifest"},
	}
	// accountOptions are the options only an account sets (Account.Options), with why.
	accountOptions = map[string]map[string]string{
		"": {
			"output_dir": "the worker sets it from the request's dest",
			"overwrite":  "replaces a file already at the destination",
			"file_mode":  "decides who may read the disk images",
		},
		"aws": {
			"s3_bucket":                       "the bucket the export task writes the image into",
			"s3_prefix":                       "where in the bucket the image is written",
			"role_name":                       "the IAM role the export runs as",
			"delete_s3_object_after_download": "deletes an object in the account's bucket",
			"reuse_export_task":               "adopts an export task already running",
			"method":                          "decides what the export makes in the account: snapshots or an export task",
			"keep_snapshots":                  "leaves the export's snapshots in the account",
			"keep_base":                       "leaves the export's snapshots in the account",
			"incremental_from":                "names files on the worker (a result and the image it points to) for the export to read",
		},
		"azure": {
			"keep_base":        "leaves the export's incremental snapshot in the account",
			"incremental_from": "names files on the worker (a result and the image it points to) for the export to read",
		},
		"gcp": {
			"bucket":                       "the bucket the image is written into",
			"prefix":                       "where in the bucket the image is written",
			"delete_object_after_download": "deletes an object in the account's bucket",
			"reuse_object":                 "adopts whatever object is at the destination name",
			"network":                      "the network the exporter's VM runs in",
			"subnet":                       "the subnetwork the exporter's VM runs in",
			"compute_service_account":      "the identity the exporter's VM runs as",
			"skip_prerequisite_check":      "skips the check of the project's services and roles",
		},
		"http": {
			"headers": "headers are credentials, and would override the account's",
		},
		"hyperv": {
			"host_output_dir": "the folder the Hyper-V host writes into",
		},
		"vsphere": {
			"keep_base":        "turns changed block tracking on in the VM's configuration",
			"incremental_from": "names files on the worker (a result and the images it points to) for the export to read",
		},
	}
)

// DefaultRequestOptions is the sorted list of the options a request may set on an account of
// provider when the account names no list of its own.
func DefaultRequestOptions(provider string) []string {
	out := append(slices.Clone(requestOptions[""]), requestOptions[provider]...)
	sort.Strings(out)
	return out
}

// refused is a non-retryable error for an option a request may not set on an account.
func refused(option, account, why string) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("option %q is not allowed in a request on account %q (%s)", option, account, why),
		"invalid_argument", nil)
}

// exportOptions is what the library gets for req on the account named name, exporting into
// dest (relative to the output root): the request's options, each of which must be on the
// account's allow-list and not fixed by the account, then the account's fixed options.
// output_dir is never taken from either (the caller sets it). A Hyper-V account's
// host_output_dir names the output root as the host sees it: each export's is dest under it.
func exportOptions(name string, acct Account, req map[string]any, dest string) (map[string]any, error) {
	allowed := acct.RequestOptions
	if allowed == nil {
		allowed = DefaultRequestOptions(acct.Provider)
	}
	keys := make([]string, 0, len(req))
	for k := range req {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same option is named on every attempt
	opts := make(map[string]any, len(req)+len(acct.Options)+1)
	for _, k := range keys {
		switch {
		case k == "output_dir":
			return nil, refused(k, name, "the destination is the request's dest")
		case hasKey(acct.Options, k):
			return nil, refused(k, name, "the account sets it")
		case !slices.Contains(allowed, k):
			return nil, refused(k, name, "not on the account's list of request options")
		}
		opts[k] = req[k]
	}
	for k, v := range acct.Options {
		opts[k] = v
	}
	if base, ok := acct.Options["host_output_dir"].(string); ok && acct.Provider == "hyperv" {
		opts["host_output_dir"] = hostJoin(base, dest)
	}
	return opts, nil
}

// hostJoin is rel (a cleaned, relative, slash-separated dest) under base, a folder as another
// host names it: with backslashes when base has any (a Windows path or share).
func hostJoin(base, rel string) string {
	sep := "/"
	if strings.Contains(base, `\`) {
		sep = `\`
	}
	return strings.TrimRight(base, `\/`) + sep + strings.ReplaceAll(rel, "/", sep)
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// CheckAccount refuses an account whose own options would choose the destination folder (the
// worker sets output_dir from each request's dest) or whose list of request options names
// output_dir.
func CheckAccount(name string, acct Account) error {
	if hasKey(acct.Options, "output_dir") || slices.Contains(acct.RequestOptions, "output_dir") {
		return fmt.Errorf("account %q: output_dir is set by the worker from each request's dest", name)
	}
	return nil
}

// checkOrigins refuses, on an http account whose config carries headers, a source or `files`
// URL whose origin is not one of the account's AllowedOrigins: the account's headers (a token)
// go with every request of the export, and a wave author must not be able to name a host of
// their own and receive them. Accounts without headers, and other providers, are not limited.
func checkOrigins(name string, acct Account, source string, opts map[string]any) error {
	if acct.Provider != "http" {
		return nil
	}
	var cfg struct {
		Headers map[string]any `json:"headers"`
	}
	if err := json.Unmarshal(acct.Config, &cfg); err != nil || len(cfg.Headers) == 0 {
		return nil
	}
	urls := []string{}
	if source != "" {
		urls = append(urls, source)
	}
	if files, ok := opts["files"].([]any); ok {
		for _, f := range files {
			if m, ok := f.(map[string]any); ok {
				if u, ok := m["url"].(string); ok {
					urls = append(urls, u)
				}
			}
		}
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		origin := ""
		if err == nil {
			origin = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		ok := false
		for _, a := range acct.AllowedOrigins {
			ok = ok || strings.EqualFold(strings.TrimRight(a, "/"), origin)
		}
		if !ok {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"account %q sends its headers with every request: the origin %q is not in its allowed_origins",
				name, Printable(origin)), "invalid_argument", nil)
		}
	}
	return nil
}
