package hypersdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	hypersdk "github.com/hypersdk/hypersdk/bindings/go"
)

// Lists the providers this library knows, with no client. Its output is checked by go test.
func ExampleProviderInfo() {
	schema, err := hypersdk.ProviderInfo()
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range schema.Providers {
		fmt.Println(p.Name)
	}
	// Output:
	// aws
	// azure
	// gcp
	// http
	// hyperv
	// vsphere
}

// Downloads one file over HTTP(S) with ranged requests, verified against its SHA-256, printing
// progress; Ctrl+C cancels it (the partial file stays for a resume).
func ExampleClient_Export() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	client, err := hypersdk.NewClient("http", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	opts := hypersdk.HTTPExportOptions{
		ExportOptions: hypersdk.ExportOptions{OutputDir: "/var/backups", Overwrite: hypersdk.Ptr(true)},
		SHA256:        "the file's published SHA-256, in hex",
	}
	res, err := client.Export(ctx, "https://example.com/disk.qcow2", opts, func(p hypersdk.Progress) {
		fmt.Printf("%s %d/%d bytes\n", p.Phase, p.BytesDone, p.BytesTotal)
	})
	if errors.Is(err, hypersdk.ErrCancelled) {
		log.Fatal("cancelled; cleanup has run")
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range res.Files {
		fmt.Println(f.Path, f.Size)
	}
}

// Starts exports of two EC2 instances at once (through an S3 bucket), watches them and waits
// for both.
func ExampleClient_StartExport() {
	client, err := hypersdk.NewClient("aws", map[string]any{"region": "eu-west-1"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	opts := hypersdk.AWSExportOptions{
		ExportOptions:   hypersdk.ExportOptions{OutputDir: "/backups"},
		S3Bucket:        "exports",
		DiskImageFormat: "vmdk",
	}
	var exports []*hypersdk.Export
	for _, id := range []string{"i-0abc", "i-0def"} {
		e, err := client.StartExport(context.Background(), id, opts, nil)
		if err != nil {
			log.Fatal(err)
		}
		defer e.Close()
		exports = append(exports, e)
	}
	for _, e := range exports {
		p := e.Progress() // pull: the latest reading, without a callback
		fmt.Println(p.Phase, p.Message)
	}
	for _, e := range exports {
		if _, err := e.Wait(); err != nil {
			log.Println(err)
		}
	}
}

// Typed options are the library's keys; Extra carries any other (and wins over a typed field).
func ExampleVsphereExportOptions() {
	opts := hypersdk.VsphereExportOptions{
		ExportOptions: hypersdk.ExportOptions{OutputDir: "/backups", ParallelFiles: hypersdk.Ptr(2)},
		Format:        "ova",
		Quiesce:       hypersdk.Ptr(true),
	}
	_ = opts // pass it to Client.Export or Client.StartExport as opts
}
