package hypersdk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestProviderInfo(t *testing.T) {
	s, err := ProviderInfo()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range s.Providers {
		names = append(names, p.Name)
		if !p.BuiltIn || len(p.Sources) == 0 || len(p.OptionKeys) == 0 {
			t.Errorf("%s described as %+v", p.Name, p)
		}
		// The schema's config keys are the ones the library itself names when it refuses one.
		_, err := NewClient(p.Name, map[string]any{"zz_not_a_key": 1})
		var he *Error
		if !errors.As(err, &he) || he.Status != StatusInvalidArgument || !strings.Contains(he.Message, "zz_not_a_key") {
			t.Errorf("%s: an unknown config key gave %v", p.Name, err)
			continue
		}
		for _, k := range p.ConfigKeys {
			if !strings.Contains(he.Message, k) {
				t.Errorf("%s: config key %s is not in the library's refusal %q", p.Name, k, he.Message)
			}
		}
	}
	for _, want := range []string{"aws", "azure", "gcp", "http", "hyperv", "vsphere"} {
		if _, ok := s.Provider(want); !ok {
			t.Errorf("no provider %s in %v", want, names)
		}
	}
	if _, ok := s.Provider("nope"); ok {
		t.Error("found a provider named nope")
	}
	defaults := map[string]any{}
	for _, o := range s.CommonOptions {
		defaults[o.Key] = o.Default
	}
	if defaults["overwrite"] != false || defaults["keep_partial"] != true || defaults["file_mode"] != "0600" {
		t.Errorf("defaults: %v", defaults)
	}
	if n, ok := defaults["part_size"].(json.Number); !ok || n.String() != "8388608" {
		t.Errorf("part_size default %#v", defaults["part_size"])
	}
}
