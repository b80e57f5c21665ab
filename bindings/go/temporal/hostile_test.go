package temporal_test

// A hostile wave author and hostile text on a real Temporal dev server with hypersdk-worker
// processes (see wave_test.go): what a request may set on a worker's account, and what
// hypersdk-wave prints.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hstemporal "github.com/hypersdk/hypersdk/bindings/go/temporal"
)

// A wave author holds no credentials, so a request may not choose where the cloud writes the
// disk image (an S3 prefix or bucket of their choosing) nor replace a file: such a request
// fails once, without retry, naming the option and the account, and no export task is made.
// The account's own bucket and prefix (set on the worker) are what the cloud gets.
func TestRequestCannotChooseWhereTheCloudWrites(t *testing.T) {
	needServer(t)
	m := startMoto(t)
	srv := newBlobServer(t, 64<<20)
	root := t.TempDir()
	queue := "q-options"
	awsCfg := map[string]any{"region": "us-east-1", "endpoint_url": m["endpoint"],
		"access_key_id": m["access_key_id"], "secret_access_key": m["secret_access_key"]}
	startWorker(t, "worker-o", queue, root, map[string]any{
		"aws-prod": map[string]any{"provider": "aws", "config": awsCfg,
			"options": map[string]any{"s3_bucket": m["bucket"], "s3_prefix": "waves/"}},
		"web": map[string]any{"provider": "http"},
	}, 4)
	precious := filepath.Join(root, "o", "web", "b.img")
	if err := os.MkdirAll(filepath.Dir(precious), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(precious, []byte("a file someone kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	req := hstemporal.WaveRequest{MaxAttempts: 3, RetryInterval: 100 * time.Millisecond, HeartbeatTimeout: 5 * time.Second,
		Exports: []hstemporal.ExportRequest{
			{Account: "aws-prod", Provider: "aws", Source: m["instance_id"].(string), Dest: "o/mine",
				Options: map[string]any{"s3_bucket": m["bucket"], "s3_prefix": "mine/", "poll_interval_ms": 100}},
			{Account: "web", Provider: "http", Source: srv.add("/b.img", blob(1<<20, 5)), Dest: "o/web",
				Options: map[string]any{"overwrite": true}},
			{Account: "aws-prod", Provider: "aws", Source: m["instance_id"].(string), Dest: "o/good",
				Options: map[string]any{"poll_interval_ms": 100, "disk_image_format": "vmdk"}},
		}}
	c := dial(t)
	st, err := result(t, startWave(t, c, queue, req))
	if err != nil {
		t.Fatal(err)
	}
	for i, opt := range map[int]string{0: "s3_bucket", 1: "overwrite"} {
		e := st.Exports[i]
		if e.Status != hstemporal.StatusFailed || e.ErrorKind != "invalid_argument" || e.Attempt != 1 ||
			!strings.Contains(e.Error, `"`+opt+`"`) || !strings.Contains(e.Error, `"`+e.Account+`"`) {
			t.Errorf("%s with %s: want one non-retryable attempt naming the option and the account: %s attempt %d %s %q",
				e.Dest, opt, e.Status, e.Attempt, e.ErrorKind, e.Error)
		}
	}
	if got, _ := os.ReadFile(precious); string(got) != "a file someone kept" {
		t.Errorf("a request's overwrite replaced a file: %q", got)
	}
	if good := st.Exports[2]; good.Status != hstemporal.StatusDone {
		t.Fatalf("the export within its options: %s %q", good.Status, good.Error)
	}
	tasks := motoTasks(t, m)
	if len(tasks) != 1 || tasks[0]["bucket"] != m["bucket"] || !strings.HasPrefix(tasks[0]["key"].(string), "waves/") {
		t.Fatalf("want one export task, into the account's bucket and prefix: %v", tasks)
	}
}

// hypersdk-wave prints what came from outside (here a destination carrying an OSC 52
// clipboard write, a clear-screen and a C1 CSI, which a wave's history hands back as it was
// given, and an error message from a worker) with every control character escaped: in the
// progress lines and in --json.
func TestWaveCommandPrintsNoControlCharacters(t *testing.T) {
	needServer(t)
	wave := filepath.Join(t.TempDir(), "hypersdk-wave")
	build := exec.Command("go", "build", "-o", wave, "./cmd/hypersdk-wave")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hypersdk-wave: %v\n%s", err, out)
	}
	queue := "q-print"
	startWorker(t, "worker-t", queue, t.TempDir(), map[string]any{"web": map[string]any{"provider": "http"}}, 1)
	hostile := "esc/\x1b]52;c;aGk=\x07\x1b[2J\u009b31m\u202egpj"
	raw, _ := json.Marshal(map[string]any{"exports": []any{map[string]any{
		"account": "nobody\x1b]0;title\x07", "provider": "http", "source": "http://127.0.0.1:1/x", "dest": hostile}},
		"max_attempts": 1})
	file := filepath.Join(t.TempDir(), "wave.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wave, "--address", address, "--task-queue", queue, "--every", "100ms", "--json",
		"--id", "wave-print", "submit", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("hypersdk-wave: %v, want exit 2 (an export failed)\n%s", err, out.String())
	}
	printed := out.String()
	for i, r := range printed {
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Fatalf("hypersdk-wave printed %U raw at %d:\n%q", r, i, printed)
		}
	}
	if !strings.Contains(printed, `esc/\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\u{9b}31m\u{202e}gpj failed:`) {
		t.Fatalf("the failed export's line is not there, escaped:\n%s", printed)
	}
	if !strings.Contains(printed, `"dest": "esc/\u001b]52;c;aGk=\u0007\u001b[2J\u009b31m\u202egpj"`) {
		t.Fatalf("the JSON does not carry the destination escaped:\n%s", printed)
	}
}
