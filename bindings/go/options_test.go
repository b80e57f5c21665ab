package hypersdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// jsonKeys are the JSON keys of a struct type's fields, those of embedded structs included.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			keys = append(keys, jsonKeys(f.Type)...)
			continue
		}
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	sort.Strings(keys)
	return keys
}

// The typed option structs against the library's schema, both ways (as tests/provider_info.rs
// does for the C# classes): every common option is a field of ExportOptions, every provider has
// a struct whose fields are exactly the common options and its own option keys.
func TestOptionStructsCoverTheSchema(t *testing.T) {
	s, err := ProviderInfo()
	if err != nil {
		t.Fatal(err)
	}
	structs := map[string]reflect.Type{
		"aws":     reflect.TypeOf(AWSExportOptions{}),
		"azure":   reflect.TypeOf(AzureExportOptions{}),
		"gcp":     reflect.TypeOf(GCPExportOptions{}),
		"http":    reflect.TypeOf(HTTPExportOptions{}),
		"hyperv":  reflect.TypeOf(HyperVExportOptions{}),
		"vsphere": reflect.TypeOf(VsphereExportOptions{}),
	}
	var common []string
	for _, o := range s.CommonOptions {
		common = append(common, o.Key)
	}
	sort.Strings(common)
	if got := jsonKeys(reflect.TypeOf(ExportOptions{})); !reflect.DeepEqual(got, common) {
		t.Errorf("ExportOptions has keys %v, the library's common options are %v", got, common)
	}
	for _, p := range s.Providers {
		typ, ok := structs[p.Name]
		if !ok {
			t.Errorf("provider %s has no options struct", p.Name)
			continue
		}
		delete(structs, p.Name)
		want := append(append([]string{}, common...), p.OptionKeys...)
		sort.Strings(want)
		if got := jsonKeys(typ); !reflect.DeepEqual(got, want) {
			t.Errorf("%s has keys %v, the library's %s takes %v", typ.Name(), got, p.Name, want)
		}
	}
	for name := range structs {
		t.Errorf("an options struct for %s, which the library does not list", name)
	}
}

func TestOptionStructsMarshal(t *testing.T) {
	o := AWSExportOptions{ExportOptions: ExportOptions{OutputDir: "/x", Overwrite: Ptr(false),
		Extra: map[string]any{"s3_prefix": "from-extra", "zz": 1}}, S3Bucket: "b", S3Prefix: "typed"}
	js, err := toJSON(o)
	if err != nil {
		t.Fatal(err)
	}
	// Unset fields left out, false kept, Extra over the typed field; a pointer works the same.
	want := `{"output_dir":"/x","overwrite":false,"s3_bucket":"b","s3_prefix":"from-extra","zz":1}`
	if js != want {
		t.Errorf("got %s, want %s", js, want)
	}
	if js2, _ := toJSON(&o); js2 != want {
		t.Errorf("a pointer gave %s", js2)
	}
}

// A typed options struct as the library reads it: the file name and checksum are honoured, and a
// wrong checksum fails the export.
func TestTypedOptionsExport(t *testing.T) {
	data := blob(300_000, 7)
	srv := server(t, map[string][]byte{"disk.raw": data})
	client, err := NewClient("http", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dir := t.TempDir()
	sum := sha256.Sum256(data)
	o := &HTTPExportOptions{ExportOptions: ExportOptions{OutputDir: dir}, FileName: "typed.raw", SHA256: hex.EncodeToString(sum[:])}
	if _, err := client.Export(context.Background(), srv.URL+"/disk.raw", o, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "typed.raw")); err != nil || len(got) != len(data) {
		t.Fatalf("typed.raw: %d bytes, %v", len(got), err)
	}
	o.FileName, o.SHA256 = "bad.raw", strings.Repeat("0", 64)
	if _, err := client.Export(context.Background(), srv.URL+"/disk.raw", o, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a wrong sha256 gave %v", err)
	}
}
