package temporal_test

// Waves on a real Temporal dev server (`temporal server start-dev`, built by
// tests/peers/temporal/install.sh) with hypersdk-worker processes, exporting from a throttled
// HTTP server in this process and from the moto peer (tests/peers/moto).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hstemporal "github.com/hypersdk/hypersdk/bindings/go/temporal"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

var (
	address   string // the dev server's frontend, set by TestMain
	workerBin string // hypersdk-worker, built by TestMain
	repoRoot  string
)

func TestMain(m *testing.M) {
	os.Exit(mainWithServer(m))
}

func mainWithServer(m *testing.M) int {
	bin := os.Getenv("HS_TEMPORAL_BIN")
	if bin == "" {
		bin, _ = exec.LookPath("temporal")
	}
	if bin == "" {
		if os.Getenv("HS_REQUIRE_TEMPORAL") == "1" {
			fmt.Fprintln(os.Stderr, "HS_REQUIRE_TEMPORAL=1 but no temporal CLI (tests/peers/temporal/install.sh builds it)")
			return 1
		}
		fmt.Println("SKIPPED: the Temporal wave tests (no temporal CLI; tests/peers/temporal/install.sh builds it)")
		return m.Run() // the unit tests still run; the wave tests skip
	}
	tmp, err := os.MkdirTemp("", "hs-temporal-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	wd, _ := os.Getwd()
	repoRoot = filepath.Clean(filepath.Join(wd, "../../.."))

	workerBin = filepath.Join(tmp, "hypersdk-worker")
	build := exec.Command("go", "build", "-o", workerBin, "./cmd/hypersdk-worker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building hypersdk-worker:", err)
		return 1
	}
	port := freePort()
	address = fmt.Sprintf("127.0.0.1:%d", port)
	srv := exec.Command(bin, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", fmt.Sprint(port), "--log-level", "error", "--db-filename", filepath.Join(tmp, "temporal.db"))
	srv.Stdout, srv.Stderr = io.Discard, os.Stderr
	// Its own process group, so the server dies with us even when a test panics.
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the Temporal dev server:", err)
		return 1
	}
	defer func() {
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
		_ = srv.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := client.Dial(client.Options{HostPort: address})
		if err == nil {
			_, err = c.CheckHealth(context.Background(), &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "the Temporal dev server did not answer within 60 s:", err)
			return 1
		}
		time.Sleep(200 * time.Millisecond)
	}
	return m.Run()
}

func needServer(t *testing.T) {
	if address == "" {
		t.Skip("no Temporal dev server")
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// blobServer serves named blobs with ranges, each connection limited to perConn bytes/s, and
// counts the bytes it wrote and the requests it got per path.
type blobServer struct {
	*httptest.Server
	mu      sync.Mutex
	blobs   map[string][]byte
	written map[string]int64
	hits    map[string]int
	perConn int
}

func newBlobServer(t *testing.T, perConn int) *blobServer {
	s := &blobServer{blobs: map[string][]byte{}, written: map[string]int64{}, hits: map[string]int{}, perConn: perConn}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		b, ok := s.blobs[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", fmt.Sprintf("%q", fmt.Sprint(len(b))))
		http.ServeContent(&throttled{ResponseWriter: w, s: s, path: r.URL.Path}, r, "", time.Unix(1700000000, 0), bytes.NewReader(b))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *blobServer) add(path string, b []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[path] = b
	return s.URL + path
}

func (s *blobServer) bytesWritten(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written[path]
}

func (s *blobServer) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

type throttled struct {
	http.ResponseWriter
	s    *blobServer
	path string
}

func (w *throttled) Write(p []byte) (int, error) {
	const slice = 64 << 10
	n := 0
	for len(p) > 0 {
		k := min(len(p), slice)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		w.s.mu.Lock()
		w.s.written[w.path] += int64(m)
		w.s.mu.Unlock()
		if err != nil {
			return n, err
		}
		p = p[k:]
		time.Sleep(time.Duration(float64(k) / float64(w.s.perConn) * float64(time.Second)))
	}
	return n, nil
}

func blob(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// worker is a hypersdk-worker process.
type worker struct {
	cmd  *exec.Cmd
	name string
}

func startWorker(t *testing.T, name, queue, root string, accounts map[string]any, concurrency int) *worker {
	dir := t.TempDir()
	af := filepath.Join(dir, "accounts.json")
	raw, _ := json.Marshal(accounts)
	if err := os.WriteFile(af, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(workerBin, "--address", address, "--task-queue", queue, "--accounts", af,
		"--output-root", root, "--identity", name, "--concurrency", fmt.Sprint(concurrency),
		"--heartbeat-every", "300ms")
	// The worker logs every failed attempt (some tests fail exports on purpose): shown only when
	// the test fails.
	logf, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &worker{cmd: cmd, name: name}
	t.Cleanup(func() {
		defer func() {
			_ = logf.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logf.Name())
				t.Logf("%s's log:\n%s", name, out)
			}
		}()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return w
}

func dial(t *testing.T) client.Client {
	c, err := client.Dial(client.Options{HostPort: address})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func startWave(t *testing.T, c client.Client, queue string, req hstemporal.WaveRequest) client.WorkflowRun {
	req.TaskQueue = queue
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "wave-" + strings.ReplaceAll(t.Name(), "/", "-"), TaskQueue: queue,
		WorkflowExecutionTimeout: 3 * time.Minute,
	}, hstemporal.WorkflowName, req)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func query(t *testing.T, c client.Client, run client.WorkflowRun) hstemporal.WaveState {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), hstemporal.QueryState)
	if err != nil {
		t.Fatalf("state query: %v", err)
	}
	var st hstemporal.WaveState
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitFor polls the state query until ok says so.
func waitFor(t *testing.T, c client.Client, run client.WorkflowRun, what string, ok func(hstemporal.WaveState) bool) hstemporal.WaveState {
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := query(t, c, run)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 60 s; state: %+v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func result(t *testing.T, run client.WorkflowRun) (hstemporal.WaveState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var st hstemporal.WaveState
	err := run.Get(ctx, &st)
	return st, err
}

// Six throttled exports on two workers; one worker is killed with SIGKILL while it has exports
// mid-transfer. The wave completes on the other worker, every file is exact, and what the
// server sent after the kill is what the retried exports were missing, not whole files again.
func TestWaveSurvivesAKilledWorker(t *testing.T) {
	needServer(t)
	const size = 24 << 20
	// 256 KiB/s per connection: a free connection now cuts running parts (up to 12 of 2 MiB
	// here), and at 1 MiB/s an export was a quarter done before its journal's first write (a
	// second in), so the kill left nothing to resume.
	srv := newBlobServer(t, 256<<10)
	root := t.TempDir()
	accounts := map[string]any{"web": map[string]any{"provider": "http", "config": map[string]any{}}}
	queue := "q-kill"
	a := startWorker(t, "worker-a", queue, root, accounts, 2)
	startWorker(t, "worker-b", queue, root, accounts, 2)
	var req hstemporal.WaveRequest
	data := map[string][]byte{}
	for i := range 6 {
		path := fmt.Sprintf("/disk%d.img", i)
		data[path] = blob(size, int64(i))
		req.Exports = append(req.Exports, hstemporal.ExportRequest{Account: "web", Provider: "http",
			Source: srv.add(path, data[path]), Dest: fmt.Sprintf("wave/vm%d", i)})
	}
	req.HeartbeatTimeout = 2 * time.Second
	req.RetryInterval = 200 * time.Millisecond
	req.ProgressEvery = 200 * time.Millisecond
	c := dial(t)
	run := startWave(t, c, queue, req)

	// Wait until worker-a has exports well under way, then kill it.
	var onA []hstemporal.ExportState
	waitFor(t, c, run, "export a quarter done on worker-a", func(st hstemporal.WaveState) bool {
		onA = nil
		for _, e := range st.Exports {
			if e.Status == hstemporal.StatusRunning && e.Worker == "worker-a" && e.BytesTotal > 0 &&
				e.BytesDone > e.BytesTotal/4 && e.BytesDone < e.BytesTotal*3/4 {
				onA = append(onA, e)
			}
		}
		return len(onA) > 0
	})
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sentBefore := map[string]int64{}
	for _, e := range onA {
		sentBefore[pathOf(e.Source)] = srv.bytesWritten(pathOf(e.Source))
	}

	st, err := result(t, run)
	if err != nil {
		t.Fatalf("wave: %v", err)
	}
	if st.Done != 6 {
		t.Fatalf("%d of 6 done: %+v", st.Done, st)
	}
	for i, e := range st.Exports {
		path := fmt.Sprintf("/disk%d.img", i)
		got, err := os.ReadFile(filepath.Join(root, e.Dest, strings.TrimPrefix(path, "/")))
		if err != nil || !bytes.Equal(got, data[path]) {
			t.Fatalf("%s: not exact (%v)", e.Dest, err)
		}
	}
	for _, k := range onA {
		var e hstemporal.ExportState
		for _, x := range st.Exports {
			if x.ID == k.ID {
				e = x
			}
		}
		r := e.Result
		if r.Worker != "worker-b" || r.Attempt < 2 {
			t.Errorf("%s: finished by %s on attempt %d, want worker-b on a retry", e.Dest, r.Worker, r.Attempt)
		}
		if r.BytesResumed == 0 || r.BytesResumed+r.BytesFetched != size {
			t.Errorf("%s: resumed %d + fetched %d, want a resume of the killed attempt's bytes", e.Dest, r.BytesResumed, r.BytesFetched)
		}
		after := srv.bytesWritten(pathOf(e.Source)) - sentBefore[pathOf(e.Source)]
		// What the server sent after the kill is the retry's fetch (plus what was in flight to
		// the dead worker), far from the whole file again.
		if after > int64(r.BytesFetched)+(2<<20) || after >= size {
			t.Errorf("%s: the server sent %d bytes after the kill, the retry fetched %d of %d", e.Dest, after, r.BytesFetched, size)
		}
		t.Logf("%s: killed at %d of %d; the retry on %s resumed %d and fetched %d (server sent %d)",
			e.Dest, k.BytesDone, size, r.Worker, r.BytesResumed, r.BytesFetched, after)
	}
}

func pathOf(url string) string {
	i := strings.Index(url[len("http://"):], "/")
	return url[len("http://")+i:]
}

// A non-retryable failure (the source does not exist) is tried once, not MaxAttempts times;
// the other exports of the wave complete.
func TestNonRetryableFailureIsTriedOnce(t *testing.T) {
	needServer(t)
	srv := newBlobServer(t, 64<<20)
	root := t.TempDir()
	queue := "q-nonretry"
	startWorker(t, "worker-n", queue, root, map[string]any{"web": map[string]any{"provider": "http"}}, 4)
	req := hstemporal.WaveRequest{MaxAttempts: 5, RetryInterval: 100 * time.Millisecond, HeartbeatTimeout: 5 * time.Second}
	for i, p := range []string{"/a.img", "/missing.img", "/b.img"} {
		url := srv.URL + p
		if p != "/missing.img" {
			url = srv.add(p, blob(1<<20, int64(i)))
		}
		req.Exports = append(req.Exports, hstemporal.ExportRequest{Account: "web", Provider: "http", Source: url, Dest: fmt.Sprintf("n/%d", i)})
	}
	// And one whose account no worker has: refused without touching anything.
	req.Exports = append(req.Exports, hstemporal.ExportRequest{Account: "nobody", Provider: "http", Source: srv.URL + "/a.img", Dest: "n/x"})
	c := dial(t)
	st, err := result(t, startWave(t, c, queue, req))
	if err != nil {
		t.Fatal(err)
	}
	if st.Done != 2 || st.Failed != 2 {
		t.Fatalf("want 2 done and 2 failed: %+v", st)
	}
	missing, nobody := st.Exports[1], st.Exports[3]
	if missing.ErrorKind != "not_found" || !strings.Contains(missing.Error, "404") {
		t.Errorf("missing source: %s %q", missing.ErrorKind, missing.Error)
	}
	if nobody.ErrorKind != "invalid_argument" || !strings.Contains(nobody.Error, "nobody") {
		t.Errorf("unknown account: %s %q", nobody.ErrorKind, nobody.Error)
	}
	if n := srv.requests("/missing.img"); n != 1 {
		t.Errorf("the missing source was asked for %d times, want once", n)
	}
	if _, err := os.Stat(filepath.Join(root, "n/1/missing.img")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left a file: %v", err)
	}
}

// The state query shows an export's bytes rising, never falling, to its total.
func TestQueryProgressRisesToTheTotal(t *testing.T) {
	needServer(t)
	const size = 16 << 20
	srv := newBlobServer(t, 1<<20)
	queue := "q-progress"
	root := t.TempDir()
	startWorker(t, "worker-p", queue, root, map[string]any{"web": map[string]any{"provider": "http"}}, 1)
	req := hstemporal.WaveRequest{ProgressEvery: 100 * time.Millisecond, HeartbeatTimeout: 5 * time.Second,
		Exports: []hstemporal.ExportRequest{{Account: "web", Provider: "http", Source: srv.add("/p.img", blob(size, 9)), Dest: "p"}}}
	c := dial(t)
	run := startWave(t, c, queue, req)
	var seen []uint64
	var last hstemporal.ExportState
	waitFor(t, c, run, "the end", func(st hstemporal.WaveState) bool {
		last = st.Exports[0]
		if n := len(seen); n == 0 || seen[n-1] != last.BytesDone {
			seen = append(seen, last.BytesDone)
		}
		if last.Status == hstemporal.StatusRunning && last.BytesDone > 0 && last.BytesTotal != size {
			t.Errorf("total %d while running, want %d", last.BytesTotal, size)
		}
		return last.Status != hstemporal.StatusRunning && last.Status != hstemporal.StatusPending
	})
	if last.Status != hstemporal.StatusDone || last.BytesDone != size {
		t.Fatalf("ended %s at %d bytes: %+v", last.Status, last.BytesDone, last)
	}
	inside := 0
	for i, b := range seen {
		if i > 0 && b < seen[i-1] {
			t.Fatalf("bytes went down: %v", seen)
		}
		if b > 0 && b < size {
			inside++
		}
	}
	if inside < 3 {
		t.Fatalf("the query showed %d readings between 0 and the total, want a rising series: %v", inside, seen)
	}
}

// Cancelling the wave stops every export: the AWS export task is cancelled at the moto peer,
// the HTTP download stops, and no file is left at a final name.
func TestCancelledWaveCancelsTheCloudTask(t *testing.T) {
	needServer(t)
	m := startMoto(t)
	srv := newBlobServer(t, 256<<10)
	root := t.TempDir()
	queue := "q-cancel"
	awsCfg := map[string]any{"region": "us-east-1", "endpoint_url": m["endpoint"],
		"access_key_id": m["access_key_id"], "secret_access_key": m["secret_access_key"]}
	startWorker(t, "worker-c", queue, root, map[string]any{
		// Where the cloud writes is the account's (a request may not choose it).
		"aws": map[string]any{"provider": "aws", "config": awsCfg,
			"options": map[string]any{"s3_bucket": m["bucket"], "s3_prefix": "slow/"}},
		"web": map[string]any{"provider": "http"},
	}, 4)
	req := hstemporal.WaveRequest{HeartbeatTimeout: 2 * time.Second, ProgressEvery: 100 * time.Millisecond,
		Exports: []hstemporal.ExportRequest{
			{Account: "aws", Provider: "aws", Source: m["instance_id"].(string), Dest: "c/aws",
				Options: map[string]any{"poll_interval_ms": 100}},
			{Account: "web", Provider: "http", Source: srv.add("/big.img", blob(32<<20, 3)), Dest: "c/web"},
		},
		// A third waits behind the wave limit and never starts.
		MaxConcurrent: 2,
	}
	req.Exports = append(req.Exports, hstemporal.ExportRequest{Account: "web", Provider: "http", Source: srv.URL + "/big.img", Dest: "c/later"})
	c := dial(t)
	run := startWave(t, c, queue, req)
	waitFor(t, c, run, "both exports under way", func(st hstemporal.WaveState) bool {
		return st.Exports[0].Phase == "waiting-for-cloud" && st.Exports[1].BytesDone > 0
	})
	if err := c.CancelWorkflow(context.Background(), run.GetID(), run.GetRunID()); err != nil {
		t.Fatal(err)
	}
	_, err := result(t, run)
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("wave ended with %v, want cancelled", err)
	}
	tasks := motoTasks(t, m)
	if len(tasks) != 1 || tasks[0]["cancelled"] != true {
		t.Fatalf("the export task at the peer was not cancelled: %v", tasks)
	}
	// Partial files (.hspart, kept for a resume) may stay; nothing at a final name.
	for _, d := range []string{"c/web", "c/aws", "c/later"} {
		matches, _ := filepath.Glob(filepath.Join(root, d, "*"))
		for _, f := range matches {
			if !strings.Contains(filepath.Base(f), ".hspart") {
				t.Errorf("a cancelled export left %s", f)
			}
		}
	}
	if st := query(t, c, run); st.Cancelled != 3 {
		t.Errorf("want all 3 exports cancelled: %+v", st)
	}
	if n := srv.requests("/big.img"); n == 0 {
		t.Error("the HTTP export never ran")
	}
}

// startMoto starts tests/peers/moto/moto_peer.py (moto + the export-task stand-in) in the venv
// the Rust tests made (or makes it), and returns its JSON line.
func startMoto(t *testing.T) map[string]any {
	home, _ := os.UserHomeDir()
	venv := filepath.Join(home, ".cache/hypersdk-tools/moto-venv")
	py := filepath.Join(venv, "bin/python")
	if exec.Command(py, "-c", "import moto, boto3").Run() != nil {
		for _, args := range [][]string{{"python3", "-m", "venv", venv},
			{filepath.Join(venv, "bin/pip"), "install", "-q", "-r", filepath.Join(repoRoot, "tests/peers/moto/requirements.txt")}} {
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
		}
	}
	fixture := filepath.Join(t.TempDir(), "disk.vmdk")
	if err := os.WriteFile(fixture, blob(4096, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join(repoRoot, "tests/peers/moto/moto_peer.py"), "--fixture", fixture, "--exit-on-stdin-eof")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the moto peer said nothing: %v", err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatalf("the moto peer said %q", line)
	}
	return info
}

func motoTasks(t *testing.T, m map[string]any) []map[string]any {
	r, err := http.Get(m["control"].(string) + "/tasks")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var tasks []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&tasks); err != nil {
		t.Fatal(err)
	}
	return tasks
}
