package hypersdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowReader paces reads, so a download takes long enough to cancel.
type slowReader struct {
	*bytes.Reader
	perRead time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	if len(p) > 32*1024 {
		p = p[:32*1024]
	}
	time.Sleep(s.perRead)
	return s.Reader.Read(p)
}

// server serves blobs by name with Range support (net/http's ServeContent); names starting
// with "slow/" are paced.
func server(t *testing.T, blobs map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		data, ok := blobs[strings.TrimPrefix(name, "slow/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", fmt.Sprintf("\"%d\"", len(data)))
		var rs io.ReadSeeker = bytes.NewReader(data)
		if strings.HasPrefix(name, "slow/") {
			rs = slowReader{bytes.NewReader(data), 20 * time.Millisecond}
		}
		http.ServeContent(w, r, name, time.Unix(1700000000, 0), rs)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func blob(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func opts(dir string, extra map[string]any) map[string]any {
	o := map[string]any{"output_dir": dir, "part_size": 262144, "progress_interval_ms": 10}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func TestConcurrentExports(t *testing.T) {
	blobs := map[string][]byte{}
	for i := 0; i < 6; i++ {
		blobs[fmt.Sprintf("disk%d.vmdk", i)] = blob(1_000_000+i*31_337, int64(i))
	}
	srv := server(t, blobs)
	dir := t.TempDir()
	cl, err := NewClient("http", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	var wg sync.WaitGroup
	for name, data := range blobs {
		wg.Add(1)
		go func(name string, data []byte) {
			defer wg.Done()
			var mu sync.Mutex
			var last Progress
			terminal, calls, inCall := 0, 0, 0
			res, err := cl.Export(context.Background(), srv.URL+"/"+name, opts(dir, nil), func(p Progress) {
				mu.Lock()
				inCall++
				if inCall > 1 {
					t.Errorf("%s: overlapping callbacks", name)
				}
				if p.BytesDone < last.BytesDone {
					t.Errorf("%s: bytes went back %d -> %d", name, last.BytesDone, p.BytesDone)
				}
				if last.Phase.Terminal() {
					t.Errorf("%s: call after terminal", name)
				}
				if p.Phase.Terminal() {
					terminal++
				}
				calls++
				last = p
				inCall--
				mu.Unlock()
			})
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if terminal != 1 || last.Phase != PhaseDone {
				t.Errorf("%s: terminal calls %d, last phase %v", name, terminal, last.Phase)
			}
			if last.BytesDone != uint64(len(data)) || last.BytesTotal != uint64(len(data)) {
				t.Errorf("%s: final progress %d/%d", name, last.BytesDone, last.BytesTotal)
			}
			if res.Status != "done" || len(res.Files) != 1 || res.Files[0].Size != uint64(len(data)) ||
				!res.Files[0].SizeVerified {
				t.Errorf("%s: result %s", name, res.JSON)
			}
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: file differs (%v)", name, err)
			}
		}(name, data)
	}
	wg.Wait()
}

func TestContextCancelStopsExport(t *testing.T) {
	srv := server(t, map[string][]byte{"big.raw": blob(8<<20, 9)})
	dir := t.TempDir()
	cl, err := NewClient("http", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	e, err := cl.StartExport(ctx, srv.URL+"/slow/big.raw", opts(dir, map[string]any{"file_name": "big.raw"}), func(p Progress) {
		if p.BytesDone > 0 {
			once.Do(cancel)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := e.Wait()
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancelled error, got %v", err)
	}
	var he *Error
	if !errors.As(err, &he) || he.Status != StatusCancelled {
		t.Fatalf("error %#v", err)
	}
	if res.Status != "cancelled" {
		t.Fatalf("result %s", res.JSON)
	}
	if _, err := os.Stat(filepath.Join(dir, "big.raw")); !os.IsNotExist(err) {
		t.Fatalf("a cancelled export left a final file")
	}
	if p := e.Progress(); p.Phase != PhaseCancelled {
		t.Fatalf("pull after cancel: %v", p.Phase)
	}
}

func TestSetPriorityLetsARaisedQueuedExportInFirst(t *testing.T) {
	srv := server(t, map[string][]byte{"big.raw": blob(8<<20, 11)})
	dir := t.TempDir()
	if err := Configure(map[string]any{"max_concurrent_exports": 1}); err != nil {
		t.Fatal(err)
	}
	defer Configure(map[string]any{})
	cl, err := NewClient("http", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	start := func(name string) *Export {
		e, err := cl.StartExport(context.Background(), srv.URL+"/slow/big.raw", opts(dir, map[string]any{"file_name": name, "parts_in_flight": 1, "max_parts_in_flight": 1}), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Cancel(); e.Wait(); e.Close() })
		return e
	}
	a := start("a.raw")
	for a.Progress().Phase == PhaseQueued {
		time.Sleep(5 * time.Millisecond)
	}
	if a.SetPriority(5) {
		t.Fatal("a running export is not queued")
	}
	b, c := start("b.raw"), start("c.raw")
	if !c.SetPriority(3) {
		t.Fatal("c waits: its priority changes")
	}
	a.Cancel()
	a.Wait()
	// c, the later one, has the one slot (a paced download, one request at a time: seconds)
	// while b still waits.
	for c.Progress().Phase == PhaseQueued {
		time.Sleep(5 * time.Millisecond)
	}
	if p := b.Progress().Phase; p != PhaseQueued {
		t.Fatalf("b was let in before c: %v", p)
	}
}

func TestErrorsAreCategorised(t *testing.T) {
	_, err := NewClient("http", map[string]any{"insecure_skip_verfy": true})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "insecure_skip_verfy") {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := NewClient("nosuch", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown provider: %v", err)
	}
	srv := server(t, map[string][]byte{"a": blob(1000, 1)})
	cl, err := NewClient("http", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dir := t.TempDir()
	if _, err := cl.StartExport(context.Background(), srv.URL+"/a", opts(dir, map[string]any{"part_sise": 1}), nil); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "part_sise") {
		t.Fatalf("unknown option: %v", err)
	}
	_, err = cl.Export(context.Background(), srv.URL+"/missing", opts(dir, nil), nil)
	var he *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &he) || he.Phase != PhaseDownloading {
		t.Fatalf("missing object: %v", err)
	}
	_, err = cl.Export(context.Background(), srv.URL+"/a", opts(dir, map[string]any{"sha256": strings.Repeat("ab", 32)}), nil)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("bad checksum: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatalf("a failed export left a final file")
	}
}

func TestManyExportsLeakNothing(t *testing.T) {
	srv := server(t, map[string][]byte{"s": blob(50_000, 3), "big": blob(2<<20, 5)})
	cl, err := NewClient("http", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for round := 0; round < 5; round++ {
		dir := t.TempDir()
		var exports []*Export
		for i := 0; i < 10; i++ {
			e, err := cl.StartExport(context.Background(), srv.URL+"/s", opts(dir, map[string]any{"file_name": fmt.Sprintf("s%d", i)}), func(Progress) {})
			if err != nil {
				t.Fatal(err)
			}
			exports = append(exports, e)
		}
		for _, e := range exports {
			if _, err := e.Wait(); err != nil {
				t.Fatal(err)
			}
			e.Close()
		}
	}
	// Freed while running: cancelled, and its handle still released by the terminal call.
	e, err := cl.StartExport(context.Background(), srv.URL+"/slow/big", opts(t.TempDir(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := e.Done()
	if g := ourGoroutines(); g < 2 {
		t.Fatalf("the goroutine probe sees %d of a running export's 2 goroutines", g)
	}
	e.Close()
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (liveHandles.Load() != 0 || ourGoroutines() != 0) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := liveHandles.Load(); n != 0 {
		t.Fatalf("%d cgo handles leaked", n)
	}
	if g := ourGoroutines(); g != 0 {
		t.Fatalf("%d binding goroutines left", g)
	}
}

// ourGoroutines counts goroutines running this package's code (the test server's connection
// goroutines are not ours).
func ourGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	count := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		// A goroutine that has not run yet shows only its go-statement wrapper
		// (StartExport.gowrapN), one that runs shows deliver or the watcher (StartExport.funcN).
		if strings.Contains(g, "(*exportState).deliver") || strings.Contains(g, "(*Client).StartExport.") {
			count++
		}
	}
	return count
}

func TestSlowCallbackDoesNotLoseTheEnd(t *testing.T) {
	srv := server(t, map[string][]byte{"x": blob(3<<20, 4)})
	cl, err := NewClient("http", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var phases []Phase
	_, err = cl.Export(context.Background(), srv.URL+"/x", opts(t.TempDir(), map[string]any{"progress_interval_ms": 1}), func(p Progress) {
		phases = append(phases, p.Phase)
		time.Sleep(30 * time.Millisecond) // far slower than the library's calls
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(phases) == 0 || phases[len(phases)-1] != PhaseDone {
		t.Fatalf("phases seen: %v", phases)
	}
}

func TestVersionAndConfigure(t *testing.T) {
	if Version() == "" {
		t.Fatal("empty version")
	}
	if err := Configure(map[string]any{"max_concurrent_exports": 0}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("configure: %v", err)
	}
	if err := Configure(nil); err != nil {
		t.Fatal(err)
	}
}
