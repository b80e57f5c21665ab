package temporal

import (
	"path/filepath"
	"testing"
)

func TestDestinationStaysUnderTheRoot(t *testing.T) {
	a := &Activities{OutputRoot: "/srv/exports"}
	for _, bad := range []string{"", ".", "..", "../x", "a/../../b", "/etc", "a\x00b"} {
		if d, err := a.destination(bad); err == nil {
			t.Errorf("dest %q accepted as %s", bad, d)
		}
	}
	for dest, want := range map[string]string{"w1/vm1": "w1/vm1", "a/./b/": "a/b", "a/../b": "b", "a'b\"c; rm -rf": "a'b\"c; rm -rf"} {
		d, err := a.destination(dest)
		if err != nil || d != filepath.Join("/srv/exports", want) {
			t.Errorf("dest %q: %q, %v", dest, d, err)
		}
	}
	if _, err := (&Activities{}).destination("x"); err == nil {
		t.Error("a worker without an output root accepted a destination")
	}
}

func TestLimitsCountPerProviderAccountAndWave(t *testing.T) {
	req := WaveRequest{
		Exports: []ExportRequest{
			{Account: "a1", Provider: "aws", Source: "i-1", Dest: "1"},
			{Account: "a1", Provider: "aws", Source: "i-2", Dest: "2"},
			{Account: "a2", Provider: "aws", Source: "i-3", Dest: "3"},
			{Account: "v", Provider: "vsphere", Source: "vm", Dest: "4"},
			{Account: "a2", Provider: "aws", Source: "i-5", Dest: "5"},
			{Account: "v", Provider: "vsphere", Source: "vm2", Dest: "6"},
		},
		ProviderLimits: map[string]int{"aws": 2},
		AccountLimits:  map[string]int{"a1": 1},
		MaxConcurrent:  3,
	}
	w := newWave(req)
	if !w.allowed(0) {
		t.Fatal("first export not allowed")
	}
	w.take(0, 1)
	if w.allowed(1) {
		t.Error("account limit a1=1 not enforced")
	}
	if !w.allowed(2) {
		t.Error("another account of the provider refused")
	}
	w.take(2, 1)
	if w.allowed(4) {
		t.Error("provider limit aws=2 not enforced")
	}
	if !w.allowed(3) {
		t.Error("another provider refused")
	}
	w.take(3, 1)
	if w.allowed(5) {
		t.Error("wave limit 3 not enforced")
	}
	w.take(0, -1)
	if !w.allowed(1) || !w.allowed(5) {
		t.Error("a freed place was not given back")
	}
}

func TestIDsAreStableAndDistinct(t *testing.T) {
	a := ExportRequest{Account: "x", Source: "i-1", Dest: "d"}
	b := a
	b.Options = map[string]any{"parts": 4}
	if a.ID() != b.ID() {
		t.Error("options changed the ID")
	}
	for _, c := range []ExportRequest{{Account: "y", Source: "i-1", Dest: "d"}, {Account: "x", Source: "i-2", Dest: "d"},
		{Account: "x", Source: "i-1", Dest: "e"}, {Account: "x\x00i-1", Source: "", Dest: "d"}} {
		if c.ID() == a.ID() {
			t.Errorf("%+v has the ID of %+v", c, a)
		}
	}
}
