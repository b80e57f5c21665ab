// Package hypersdk exports virtual machines and disks to local disk through libhypersdk's C ABI:
// many exports at once, with progress, cancellation through a context, resume and verification.
//
// The module is github.com/hypersdk/hypersdk/bindings/go, nested in the repository, so its
// release tags carry the folder: bindings/go/vX.Y.Z (the same X.Y.Z as the library), and
//
//	go get github.com/hypersdk/hypersdk/bindings/go@vX.Y.Z
//
// takes that tag (`@main` a pseudo-version of the branch). To build against a checkout instead:
//
//	go mod edit -replace github.com/hypersdk/hypersdk/bindings/go=/path/to/hypersdk/bindings/go
//
// Options are typed per provider (AWSExportOptions, AzureExportOptions, GCPExportOptions,
// HTTPExportOptions, HyperVExportOptions, VsphereExportOptions, each embedding ExportOptions);
// a map or raw JSON works too.
//
// cgo finds the library through pkg-config (`#cgo pkg-config: hypersdk`): after
// `make install PREFIX=/usr/local` in the repository there is nothing to set; for another prefix
// or an unpacked `make dist` tarball, add its lib/pkgconfig folder to PKG_CONFIG_PATH. At run
// time the loader must find libhypersdk.so.0 too: `ldconfig`, an rpath
// (CGO_LDFLAGS="-Wl,-rpath,$PREFIX/lib") or LD_LIBRARY_PATH.
//
// Progress callbacks never run on the library's threads: each export hands its latest progress
// to one goroutine of its own, which calls the user's function (intermediate readings are
// dropped when that function is slow; the final one never is).
package hypersdk

/*
#include <stdint.h>
#include <stdlib.h>
#include "hypersdk.h"

void hs_go_trampoline(void *user_data, const hs_progress *p);
void *hs_go_user_data(uintptr_t handle);
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Version is the version of the loaded library.
func Version() string { return C.GoString(C.hs_version()) }

// Configure sets process-wide limits (max_concurrent_exports, max_bytes_per_second,
// buffer_budget_bytes, max_connections_per_host); settings is marshalled to JSON.
func Configure(settings any) error {
	js, err := toJSON(settings)
	if err != nil {
		return err
	}
	cs := C.CString(js)
	defer C.free(unsafe.Pointer(cs))
	var cerr *C.hs_error
	return takeError(C.hs_global_configure(cs, &cerr), cerr)
}

// CommonOption is an export option every provider takes.
type CommonOption struct {
	Key string `json:"key"`
	// Type is the JSON type: "string", "boolean", "integer", "number", "array" or "object".
	Type string `json:"type"`
	// Default is the library's default as decoded JSON: a string, bool, json.Number or nil.
	Default any `json:"default"`
}

// Provider is one provider as the library describes it.
type Provider struct {
	// Name is what NewClient takes ("aws", "vsphere", …).
	Name string `json:"name"`
	// BuiltIn is false for a provider behind a cargo feature this library was built without.
	BuiltIn bool `json:"built_in"`
	// Sources are the forms of source id it exports, as text for people.
	Sources []string `json:"sources"`
	// ConfigKeys are the keys of its client config (network keys included).
	ConfigKeys []string `json:"config_keys"`
	// OptionKeys are its own export options, besides the common ones.
	OptionKeys []string `json:"option_keys"`
}

// Schema is what every known provider accepts, as ProviderInfo returns it.
type Schema struct {
	CommonOptions []CommonOption `json:"common_options"`
	Providers     []Provider     `json:"providers"`
}

// Provider returns the provider named name.
func (s Schema) Provider(name string) (Provider, bool) {
	for _, p := range s.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return Provider{}, false
}

// ProviderInfo describes every known provider (hs_provider_info): the common options with their
// types and defaults, and per provider its source forms, config keys and option keys. No client
// is needed; the answer is the loaded library's.
func ProviderInfo() (Schema, error) {
	var out *C.char
	var cerr *C.hs_error
	if err := takeError(C.hs_provider_info(&out, &cerr), cerr); err != nil {
		return Schema{}, err
	}
	raw := C.GoString(out)
	C.hs_string_free(out)
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var s Schema
	if err := dec.Decode(&s); err != nil {
		return Schema{}, &Error{Status: StatusInternal, Message: "provider info JSON: " + err.Error()}
	}
	return s, nil
}

// Client is a configured provider. Safe for concurrent use. Close it when done; exports it
// started keep running.
type Client struct {
	mu sync.RWMutex
	c  *C.hs_client
}

// NewClient creates a client for provider ("http", "aws", …: ProviderInfo lists them) with
// config marshalled to JSON (nil for defaults; a string or []byte is used as JSON text).
func NewClient(provider string, config any) (*Client, error) {
	js, err := toJSON(config)
	if err != nil {
		return nil, err
	}
	cp, cc := C.CString(provider), C.CString(js)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cc))
	var h *C.hs_client
	var cerr *C.hs_error
	if err := takeError(C.hs_client_new(cp, cc, &h, &cerr), cerr); err != nil {
		return nil, err
	}
	cl := &Client{c: h}
	runtime.SetFinalizer(cl, (*Client).Close)
	return cl, nil
}

// Close frees the client. Safe to call more than once.
func (cl *Client) Close() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.c != nil {
		C.hs_client_free(cl.c)
		cl.c = nil
	}
	runtime.SetFinalizer(cl, nil)
	return nil
}

// Source is one thing a provider can export, as ListSources reports it.
type Source struct {
	// ID is what to give StartExport as the source.
	ID        string  `json:"id"`
	Kind      string  `json:"kind"` // instance, image, disk, snapshot, vm, object
	Name      string  `json:"name"`
	SizeBytes *uint64 `json:"size_bytes,omitempty"`
	State     string  `json:"state,omitempty"`
}

// ListSources lists what the client's provider can export. filter is marshalled to JSON (nil
// for none): "kind", "name_contains" and the provider's own keys (a zone, a resource group, a
// bucket…). It blocks until the cloud answers.
func (cl *Client) ListSources(filter any) ([]Source, error) {
	js, err := toJSON(filter)
	if err != nil {
		return nil, err
	}
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if cl.c == nil {
		return nil, &Error{Status: StatusInvalidArgument, Message: "the client is closed"}
	}
	cf := C.CString(js)
	defer C.free(unsafe.Pointer(cf))
	var out *C.char
	var cerr *C.hs_error
	if err := takeError(C.hs_client_list_sources(cl.c, cf, &out, &cerr), cerr); err != nil {
		return nil, err
	}
	raw := C.GoString(out)
	C.hs_string_free(out)
	var list []Source
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return nil, &Error{Status: StatusInternal, Message: "list JSON: " + err.Error()}
	}
	return list, nil
}

// FileResult is one file of a finished export.
type FileResult struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Size     uint64 `json:"size"`
	Checksum *struct {
		Algorithm string `json:"algorithm"`
		Value     string `json:"value"`
	} `json:"checksum"`
	FetchedBytes uint64 `json:"fetched_bytes"`
	ResumedBytes uint64 `json:"resumed_bytes"`
	// Retries counts requests or parts tried again after a failure or a stall.
	Retries uint32 `json:"retries"`
	// SizeVerified is false only for a stream that ended without a stated length.
	SizeVerified bool `json:"size_verified"`
}

// Result describes how an export ended.
type Result struct {
	Status       string       `json:"status"`
	Files        []FileResult `json:"files"`
	ExtraFiles   []string     `json:"extra_files"`
	BytesTotal   uint64       `json:"bytes_total"`
	BytesFetched uint64       `json:"bytes_fetched"`
	BytesResumed uint64       `json:"bytes_resumed"`
	ElapsedMS    uint64       `json:"elapsed_ms"`
	Error        *struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
		Phase   string `json:"phase"`
	} `json:"error"`
	CleanupError string `json:"cleanup_error"`
	// JSON is the library's result as it came, including provider-specific fields.
	JSON json.RawMessage `json:"-"`
}

// liveHandles counts cgo handles not yet released (for leak tests).
var liveHandles atomic.Int64

// exportState is what the C callback reaches through its cgo.Handle.
type exportState struct {
	mu       sync.Mutex
	latest   Progress
	have     bool
	wake     chan struct{} // 1-buffered: "there is something new"
	terminal chan struct{} // closed when the C terminal callback has come
	done     chan struct{} // closed when the user's function has seen the terminal reading
	handle   cgo.Handle
}

//export hsGoProgress
func hsGoProgress(ud C.uintptr_t, p *C.hs_progress) {
	st := cgo.Handle(ud).Value().(*exportState)
	pr := progressFromC(p)
	st.mu.Lock()
	st.latest, st.have = pr, true
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
	if pr.Phase.Terminal() {
		// The library never uses user_data after this call.
		st.handle.Delete()
		liveHandles.Add(-1)
		close(st.terminal)
	}
}

// deliver runs the user's function on this export's own goroutine, latest reading first.
func (st *exportState) deliver(onProgress func(Progress)) {
	defer close(st.done)
	for range st.wake {
		st.mu.Lock()
		p, have := st.latest, st.have
		st.have = false
		st.mu.Unlock()
		if have && onProgress != nil {
			onProgress(p)
		}
		if have && p.Phase.Terminal() {
			return
		}
	}
}

// Export is a running or finished export. Safe for concurrent use. Close it when done
// (closing a running export cancels it); a forgotten one is closed by a finalizer.
type Export struct {
	mu     sync.RWMutex
	c      *C.hs_export
	st     *exportState
	ctx    context.Context
	cancel context.CancelFunc // stops the context watcher
}

// StartExport starts exporting sourceID (a URL for "http"; may be empty when opts lists files)
// with opts marshalled to JSON, and returns at once. Cancelling ctx cancels the export.
// onProgress may be nil; it runs on a goroutine of this export, never two at once, and sees the
// terminal reading last.
func (cl *Client) StartExport(ctx context.Context, sourceID string, opts any, onProgress func(Progress)) (*Export, error) {
	js, err := toJSON(opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Status: StatusCancelled, Message: "context done before start", cause: err}
	}
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if cl.c == nil {
		return nil, &Error{Status: StatusInvalidState, Message: "client is closed"}
	}
	st := &exportState{wake: make(chan struct{}, 1), terminal: make(chan struct{}), done: make(chan struct{})}
	st.handle = cgo.NewHandle(st)
	liveHandles.Add(1)
	cs, co := C.CString(sourceID), C.CString(js)
	defer C.free(unsafe.Pointer(cs))
	defer C.free(unsafe.Pointer(co))
	var h *C.hs_export
	var cerr *C.hs_error
	status := C.hs_export_start(cl.c, cs, co, C.hs_progress_cb(C.hs_go_trampoline),
		C.hs_go_user_data(C.uintptr_t(st.handle)), &h, &cerr)
	if err := takeError(status, cerr); err != nil {
		st.handle.Delete()
		liveHandles.Add(-1)
		return nil, err
	}
	go st.deliver(onProgress)
	wctx, stop := context.WithCancel(context.Background())
	e := &Export{c: h, st: st, ctx: ctx, cancel: stop}
	go func() {
		select {
		case <-ctx.Done():
			e.Cancel()
		case <-st.terminal:
		case <-wctx.Done():
		}
	}()
	runtime.SetFinalizer(e, (*Export).Close)
	return e, nil
}

// Export runs an export to its end: StartExport then Wait.
func (cl *Client) Export(ctx context.Context, sourceID string, opts any, onProgress func(Progress)) (Result, error) {
	e, err := cl.StartExport(ctx, sourceID, opts, onProgress)
	if err != nil {
		return Result{}, err
	}
	defer e.Close()
	return e.Wait()
}

// Cancel requests cancellation; it returns at once and may be called many times.
func (e *Export) Cancel() {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.c != nil {
		C.hs_export_cancel(e.c)
	}
}

// SetPriority changes the priority of an export still waiting for a slot (PhaseQueued, behind
// max_concurrent_exports): it is let in by the new priority, keeping its arrival among exports of
// equal priority. False, changing nothing, once it runs, has ended or was cancelled.
func (e *Export) SetPriority(priority int32) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.c != nil && C.hs_export_set_priority(e.c, C.int32_t(priority)) == C.HS_STATUS_OK
}

// Progress is the current reading (pull).
func (e *Export) Progress() Progress {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.c == nil {
		return Progress{}
	}
	var p C.hs_progress
	C.hs_export_progress(e.c, &p)
	return progressFromC(&p)
}

// Done is closed once the export has ended and onProgress has seen the final reading.
func (e *Export) Done() <-chan struct{} { return e.st.done }

// Wait blocks until the export ends and returns its result; the error is nil only when every
// file is complete and verified. A cancelled export's error matches ErrCancelled (and
// context.Canceled when its context was cancelled).
func (e *Export) Wait() (Result, error) {
	<-e.st.done
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.c == nil {
		return Result{}, &Error{Status: StatusInvalidState, Message: "export is closed"}
	}
	var cerr *C.hs_error
	// The terminal callback has come, so this returns at once.
	werr := takeError(C.hs_export_wait(e.c, -1, &cerr), cerr)
	var cj *C.char
	var jerr *C.hs_error
	if err := takeError(C.hs_export_result_json(e.c, &cj, &jerr), jerr); err != nil {
		return Result{}, err
	}
	raw := C.GoString(cj)
	C.hs_string_free(cj)
	var r Result
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return Result{}, &Error{Status: StatusInternal, Message: "result JSON: " + err.Error()}
	}
	r.JSON = json.RawMessage(raw)
	var he *Error
	if errors.As(werr, &he) && he.Status == StatusCancelled && e.ctx.Err() != nil {
		he.cause = e.ctx.Err()
	}
	return r, werr
}

// Close frees the export, cancelling it if it still runs (its cleanup still happens).
func (e *Export) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c != nil {
		C.hs_export_free(e.c)
		e.c = nil
	}
	e.cancel()
	runtime.SetFinalizer(e, nil)
	return nil
}

func toJSON(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "{}", nil
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case extraOptions:
		b, err := optionsJSON(x)
		if err != nil {
			return "", &Error{Status: StatusInvalidArgument, Message: "cannot marshal options to JSON: " + err.Error()}
		}
		return string(b), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", &Error{Status: StatusInvalidArgument, Message: "cannot marshal to JSON: " + err.Error()}
	}
	return string(b), nil
}
