package temporal

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

func TestAPlantedLinkInTheRootIsRefused(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(root, "wave1")); err != nil {
		t.Fatal(err)
	}
	// A link that stays inside the root is no better: it sends an export into another's folder.
	if err := os.Mkdir(filepath.Join(root, "other"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../other", filepath.Join(root, "wave3")); err != nil {
		t.Fatal(err)
	}
	a := &Activities{OutputRoot: root}
	for _, d := range []string{"wave1/vm1", "wave3/vm1", "wave3"} {
		f, err := a.openDestination(filepath.Join(root, d))
		if err == nil || !strings.Contains(err.Error(), "not a folder") {
			t.Fatalf("%s: a link in the way was followed: %v", d, err)
		}
		if f != nil {
			t.Fatalf("%s: a folder was handed out", d)
		}
	}
	for _, d := range []string{elsewhere, filepath.Join(root, "other")} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Fatalf("a folder was made through the link: %v", ents)
		}
	}
	f, err := a.openDestination(filepath.Join(root, "wave2", "a'b\"c; rm -rf", "vm"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	through, err := exportDir(f)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := f.Stat()
	if fi, err := os.Lstat(filepath.Join(root, "wave2", "a'b\"c; rm -rf", "vm")); err != nil || !os.SameFile(fi, held) {
		t.Fatalf("%s does not hold the destination: %v", through, err)
	}
}

// A link inside the root that is swapped back for a real folder after the worker opened its
// target: the folder held is not the one with the name, so it is refused, not handed out.
func TestALinkSwappedBackAfterTheOpenIsRefused(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "other"), 0o750); err != nil {
		t.Fatal(err)
	}
	wave := filepath.Join(root, "wave1")
	if err := os.Symlink("other", wave); err != nil {
		t.Fatal(err)
	}
	a := &Activities{OutputRoot: root}
	a.afterOpen = func(path string) {
		if path == wave {
			_ = os.Remove(wave)
			_ = os.Mkdir(wave, 0o750)
		}
	}
	f, err := a.openDestination(filepath.Join(wave, "vm1"))
	if err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Fatalf("the link's target was handed out: %v", err)
	}
	if f != nil {
		t.Fatal("a folder was handed out")
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "other")); len(ents) != 0 {
		t.Fatalf("a folder was made in the link's target: %v", ents)
	}
}

// The race the Lstat check had: a neighbour who can write in the shared root moves the
// destination's parent away and puts a link to their own folder in its place after the worker
// made the destination and before the library opens it. The export still lands in the folder
// the worker made (now under its new name), and nothing is written through the link.
func TestALinkSwappedInBeforeTheExportIsNotFollowed(t *testing.T) {
	data := bytes.Repeat([]byte("disk"), 64<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Unix(1700000000, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	root, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(elsewhere, "vm1"), 0o777); err != nil {
		t.Fatal(err)
	}
	a := &Activities{OutputRoot: root, Accounts: map[string]Account{"web": {Provider: "http"}}}
	defer a.Close()
	swapped := false
	a.beforeExport = func(dir string) {
		wave := filepath.Join(root, "wave1")
		if err := os.Rename(wave, filepath.Join(root, "moved")); err != nil {
			t.Error(err)
			return
		}
		if err := os.Symlink(elsewhere, wave); err != nil {
			t.Error(err)
			return
		}
		swapped = dir == filepath.Join(wave, "vm1")
	}
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(a.Export)
	v, err := env.ExecuteActivity(a.Export, ExportRequest{Account: "web", Provider: "http",
		Source: srv.URL + "/disk.img", Dest: "wave1/vm1", ProgressEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !swapped {
		t.Fatal("the folder was not swapped for a link")
	}
	if ents, _ := os.ReadDir(filepath.Join(elsewhere, "vm1")); len(ents) != 0 {
		t.Fatalf("the export wrote through the link into the neighbour's folder: %v", ents)
	}
	got, err := os.ReadFile(filepath.Join(root, "moved", "vm1", "disk.img"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the export is not in the folder the worker made: %v", err)
	}
	var r ExportResult
	if err := v.Get(&r); err != nil {
		t.Fatal(err)
	}
	// The result names the folder, not the process's handle.
	if len(r.Files) != 1 || r.Files[0].Path != filepath.Join(root, "wave1", "vm1", "disk.img") {
		t.Fatalf("result: %+v", r.Files)
	}
}
