// Several exports at once with a live progress line per export.
//
//	go run . [-out DIR] [URL...]
//
// With no URL it serves four generated 64 MiB disks from an in-process HTTP server (paced, so
// the progress is visible) and exports those.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	hypersdk "github.com/hypersdk/hypersdk/bindings/go"
)

type paced struct{ *bytes.Reader }

func (p paced) Read(b []byte) (int, error) {
	if len(b) > 256<<10 {
		b = b[:256<<10]
	}
	time.Sleep(10 * time.Millisecond)
	return p.Reader.Read(b)
}

func localServer() (*httptest.Server, []string) {
	disks := map[string][]byte{}
	var urls []string
	for i := 0; i < 4; i++ {
		b := make([]byte, 64<<20)
		rand.New(rand.NewSource(int64(i))).Read(b)
		disks[fmt.Sprintf("disk%d.vmdk", i)] = b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		data, ok := disks[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"`+name+`"`)
		var rs io.ReadSeeker = paced{bytes.NewReader(data)}
		http.ServeContent(w, r, name, time.Unix(1700000000, 0), rs)
	}))
	for name := range disks {
		urls = append(urls, srv.URL+"/"+name)
	}
	return srv, urls
}

func main() {
	out := flag.String("out", "", "output folder (default: a new temporary one)")
	flag.Parse()
	urls := flag.Args()
	if len(urls) == 0 {
		srv, u := localServer()
		defer srv.Close()
		urls = u
	}
	dir := *out
	if dir == "" {
		d, err := os.MkdirTemp("", "hypersdk-go-")
		if err != nil {
			panic(err)
		}
		dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt) // Ctrl-C cancels all
	defer stop()

	client, err := hypersdk.NewClient("http", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()

	var mu sync.Mutex
	lines := make([]string, len(urls))
	exports := make([]*hypersdk.Export, len(urls))
	for i, u := range urls {
		i := i
		e, err := client.StartExport(ctx, u, hypersdk.HTTPExportOptions{ExportOptions: hypersdk.ExportOptions{OutputDir: dir, Overwrite: hypersdk.Ptr(true)}}, func(p hypersdk.Progress) {
			eta := "   -"
			if p.ETA >= 0 {
				eta = fmt.Sprintf("%3.0fs", p.ETA.Seconds())
			}
			mu.Lock()
			lines[i] = fmt.Sprintf("%-12s %-12s %5.1f%% %7.1f / %-7.1f MiB %7.1f MiB/s ETA %s",
				p.FileName, p.Phase, 100*p.Fraction(), float64(p.BytesDone)/(1<<20), float64(p.BytesTotal)/(1<<20),
				p.Rate/(1<<20), eta)
			mu.Unlock()
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		exports[i] = e
	}
	draw := func(first bool) {
		mu.Lock()
		defer mu.Unlock()
		if !first {
			fmt.Printf("\033[%dA", len(lines))
		}
		for _, l := range lines {
			fmt.Printf("\033[2K%s\n", l)
		}
	}
	draw(true)
	all := make(chan struct{})
	go func() {
		for _, e := range exports {
			<-e.Done()
		}
		close(all)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-all:
			break loop
		case <-tick.C:
			draw(false)
		}
	}
	draw(false)
	failed := 0
	for _, e := range exports {
		r, err := e.Wait()
		if err != nil {
			failed++
			fmt.Fprintln(os.Stderr, err)
		} else {
			for _, f := range r.Files {
				fmt.Printf("%s  %d bytes\n", f.Path, f.Size)
			}
		}
		e.Close()
	}
	if failed > 0 {
		os.Exit(1)
	}
}
