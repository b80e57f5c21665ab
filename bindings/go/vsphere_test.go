package hypersdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// startVcsim starts tests/peers/vcsim (vcsim plus ExportVm and CreateDescriptor) with one disk
// fixture made by qemu-img, building the peer if HS_VCSIM_PEER does not name a built one.
func startVcsim(t *testing.T) (map[string]any, []byte) {
	t.Helper()
	dir := t.TempDir()
	peer := os.Getenv("HS_VCSIM_PEER")
	if peer == "" {
		peer = filepath.Join(dir, "vcsim-peer")
		build := exec.Command("go", "build", "-o", peer, ".")
		build.Dir = filepath.Join("..", "..", "tests", "peers", "vcsim")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the vcsim peer: %v\n%s", err, out)
		}
	}
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, blob(2<<20, 42), 0o644); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.vmdk")
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	cmd := exec.Command(peer, "-dir", dir, "-disk", disk)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("peer did not start: %v", err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatalf("peer ready line %q: %v", line, err)
	}
	data, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	return info, data
}

func TestVsphereExportThroughVcsim(t *testing.T) {
	info, disk := startVcsim(t)
	cl, err := NewClient("vsphere", map[string]any{
		"url": info["url"], "username": "admin", "password": "s3cret-pass", "ca_bundle_path": info["ca_file"],
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := t.TempDir()
	var phases []Phase
	res, err := cl.Export(context.Background(), "/DC0/vm/DC0_H0_VM0", map[string]any{"output_dir": out}, func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 1 || len(res.ExtraFiles) != 2 {
		t.Fatalf("result %s", res.JSON)
	}
	got, err := os.ReadFile(res.Files[0].Path)
	if err != nil || !bytes.Equal(got, disk) {
		t.Fatalf("the disk differs from the datastore's (%v)", err)
	}
	ovf, err := os.ReadFile(filepath.Join(out, "DC0_H0_VM0.ovf"))
	if err != nil || !strings.Contains(string(ovf), res.Files[0].Name) {
		t.Fatalf("descriptor: %v", err)
	}
	if !strings.Contains(string(res.JSON), `"vm":"vm-`) {
		t.Fatalf("no vm id in %s", res.JSON)
	}
	seen := map[Phase]bool{}
	for _, p := range phases {
		seen[p] = true
	}
	if !seen[PhaseWaitingForCloud] || !seen[PhaseDownloading] || phases[len(phases)-1] != PhaseDone {
		t.Fatalf("phases %v", phases)
	}

	// Listing gives ids an export takes.
	list, err := cl.ListSources(map[string]any{"kind": "vm", "name_contains": "DC0_H0_VM0"})
	if err != nil || len(list) != 1 || list[0].Name != "DC0_H0_VM0" || !strings.HasPrefix(list[0].ID, "vm-") {
		t.Fatalf("list: %v %+v", err, list)
	}
	if _, err := cl.ListSources(map[string]any{"zone": "x"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("an unknown filter key: %v", err)
	}

	// A wrong password is an authentication error.
	_, err = NewClient("vsphere", map[string]any{
		"url": info["url"], "username": "admin", "password": "nope", "ca_bundle_path": info["ca_file"],
	})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong password: %v", err)
	}
}
