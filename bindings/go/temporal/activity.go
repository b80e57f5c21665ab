package temporal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	hypersdk "github.com/hypersdk/hypersdk/bindings/go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Account is a provider config a worker holds, under the name requests use, with the export
// options that are the account's to decide (options.go).
type Account struct {
	Provider string          `json:"provider"`
	Config   json.RawMessage `json:"config"`
	// Options are set on every export of the account; a request that sets one of them is
	// refused. Where the cloud writes (s3_bucket, s3_prefix, bucket, prefix, host_output_dir)
	// and what is deleted, replaced or adopted belong here.
	Options map[string]any `json:"options,omitempty"`
	// RequestOptions are the option keys a request may set (nil: DefaultRequestOptions of the
	// provider, the ones that only tune the export). Any other option in a request is refused,
	// without retry, naming the option and the account.
	RequestOptions []string `json:"request_options,omitempty"`
	// AllowedOrigins are the origins (scheme://host[:port]) a request's URLs may name on an
	// http account whose config carries headers: those headers (a token) go with every
	// request, so a request must not be able to send them to a host of its own choosing.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
}

// Activities runs exports for one worker. Register it with RegisterWorker.
type Activities struct {
	// Accounts by name; their configs hold the credentials and stay on the worker.
	Accounts map[string]Account
	// OutputRoot is the shared folder every destination lives under.
	OutputRoot string
	// Identity names this worker in progress reports (default: host:pid).
	Identity string
	// Temporal is the client used to signal progress to the wave (nil: no progress signals).
	Temporal client.Client
	// HeartbeatEvery is how often the activity heartbeats (default 5 s; the SDK sends at most
	// one heartbeat per 80 % of the heartbeat timeout, so cancellation reaches the export
	// within that time).
	HeartbeatEvery time.Duration

	mu      sync.Mutex
	clients map[string]*hypersdk.Client
	// beforeExport runs between making the destination and starting the export (tests: a
	// neighbour's move in that window).
	beforeExport func(dir string)
	// afterOpen runs after each folder of a destination is opened, before it is checked
	// (tests: a link swapped back for a folder in that window).
	afterOpen func(path string)
}

// Export runs one export to its end. Its heartbeats carry the latest progress; cancelling the
// activity cancels the export and returns once the library's cleanup (cloud tasks, leases,
// grants) is done. Errors are non-retryable when another attempt cannot help (bad input,
// authentication, not found, verification, unsupported, a destination that exists).
func (a *Activities) Export(ctx context.Context, req ExportRequest) (ExportResult, error) {
	info := activity.GetInfo(ctx)
	progressEvery := req.ProgressEvery
	if progressEvery == 0 {
		progressEvery = 30 * time.Second
	}
	id := req.ID()
	acct, ok := a.Accounts[req.Account]
	if !ok {
		return ExportResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("account %q is not configured on worker %s", req.Account, a.identity()), "invalid_argument", nil)
	}
	if req.Provider != "" && req.Provider != acct.Provider {
		return ExportResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("account %q is a %s account, the request says %s", req.Account, acct.Provider, req.Provider),
			"invalid_argument", nil)
	}
	dir, err := a.destination(req.Dest)
	if err != nil {
		return ExportResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "invalid_argument", nil)
	}
	// Options before the folder: a refused option must not leave a folder behind.
	opts, err := exportOptions(req.Account, acct, req.Options, filepath.ToSlash(filepath.Clean(req.Dest)))
	if err != nil {
		return ExportResult{}, err
	}
	if err := checkOrigins(req.Account, acct, req.Source, opts); err != nil {
		return ExportResult{}, err
	}
	held, err := a.openDestination(dir)
	if err != nil {
		return ExportResult{}, err
	}
	// Open until the export has ended: the library writes through this handle.
	defer func() { _ = held.Close() }()
	through, err := exportDir(held)
	if err != nil {
		return ExportResult{}, temporal.NewApplicationError(err.Error(), "io")
	}
	// Paths the library reports are under the handle's name; the wave sees the folder's own.
	named := strings.NewReplacer(through, dir)
	cl, err := a.client(req.Account, acct)
	if err != nil {
		return ExportResult{}, toTemporal(err)
	}
	opts["output_dir"] = through
	if a.beforeExport != nil {
		a.beforeExport(dir)
	}
	// A retry after a worker died adopts the AWS export task that worker left running instead
	// of converting the disk again (the library's option; the others' cloud steps are not
	// adopted yet, see docs/SCALE.md). The account may say otherwise.
	if _, set := opts["reuse_export_task"]; acct.Provider == "aws" && !set {
		opts["reuse_export_task"] = true
	}

	hb := func(p hypersdk.Progress) Heartbeat {
		eta := -1.0
		if p.ETA >= 0 {
			eta = p.ETA.Seconds()
		}
		return Heartbeat{ID: id, Worker: a.identity(), Attempt: info.Attempt, Phase: p.Phase.String(),
			BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Rate: p.Rate, ETASeconds: eta, Message: named.Replace(p.Message)}
	}
	e, err := cl.StartExport(ctx, req.Source, opts, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ExportResult{}, temporal.NewCanceledError(id)
		}
		return ExportResult{}, toTemporal(renamed(err, named))
	}
	defer e.Close()

	// Heartbeats at a steady pace (also while the cloud works and no byte moves: silence
	// would look like a dead worker); progress signals to the wave at a coarser one.
	every := a.HeartbeatEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	beat := time.NewTicker(every)
	defer beat.Stop()
	var lastSignal time.Time
	signal := func(h Heartbeat) {
		if a.Temporal == nil || progressEvery < 0 {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A wave that has ended (or a lost signal) must not fail the export: progress is
		// advisory.
		_ = a.Temporal.SignalWorkflow(sctx, info.WorkflowExecution.ID, info.WorkflowExecution.RunID, SignalProgress, h)
		lastSignal = time.Now()
	}
	first := hb(e.Progress())
	activity.RecordHeartbeat(ctx, first)
	signal(first)
loop:
	for {
		select {
		case <-e.Done():
			break loop
		case <-beat.C:
			h := hb(e.Progress())
			activity.RecordHeartbeat(ctx, h)
			if progressEvery >= 0 && time.Since(lastSignal) >= progressEvery {
				signal(h)
			}
		}
	}
	r, err := e.Wait()
	if err != nil {
		if errors.Is(err, hypersdk.ErrCancelled) && ctx.Err() != nil {
			// Cancelled by Temporal (the wave was cancelled, or the worker stops): the cleanup
			// has run; the partial file stays for a later attempt to resume.
			return ExportResult{}, temporal.NewCanceledError(id)
		}
		return ExportResult{}, toTemporal(renamed(err, named))
	}
	final := hb(e.Progress())
	signal(final)
	out := ExportResult{ID: id, Worker: a.identity(), Attempt: info.Attempt, BytesTotal: r.BytesTotal,
		BytesFetched: r.BytesFetched, BytesResumed: r.BytesResumed, ElapsedMS: r.ElapsedMS,
		CleanupError: named.Replace(r.CleanupError)}
	for _, f := range r.Files {
		out.Files = append(out.Files, FileResult{Name: f.Name, Path: named.Replace(f.Path), Size: f.Size,
			FetchedBytes: f.FetchedBytes, ResumedBytes: f.ResumedBytes})
	}
	return out, nil
}

// Close frees the library clients the activities made.
func (a *Activities) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.clients {
		_ = c.Close()
	}
	a.clients = nil
}

func (a *Activities) identity() string {
	if a.Identity != "" {
		return a.Identity
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

// client is one library client per account, made on first use and shared by its exports.
func (a *Activities) client(name string, acct Account) (*hypersdk.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[name]; ok {
		return c, nil
	}
	cfg := []byte(acct.Config)
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	c, err := hypersdk.NewClient(acct.Provider, cfg)
	if err != nil {
		return nil, err
	}
	if a.clients == nil {
		a.clients = map[string]*hypersdk.Client{}
	}
	a.clients[name] = c
	return c, nil
}

// renamed is err with the paths under the destination's handle named as the folder itself.
func renamed(err error, named *strings.Replacer) error {
	var he *hypersdk.Error
	if !errors.As(err, &he) {
		return err
	}
	c := *he
	c.Message = named.Replace(he.Message)
	return &c
}

// nonRetryable are the library's error kinds another attempt cannot fix.
var nonRetryable = map[hypersdk.Status]bool{
	hypersdk.StatusInvalidArgument: true,
	hypersdk.StatusAuth:            true,
	hypersdk.StatusNotFound:        true,
	hypersdk.StatusVerification:    true,
	hypersdk.StatusUnsupported:     true,
	hypersdk.StatusAlreadyExists:   true,
}

// toTemporal maps a library error to a Temporal application error whose type is the library's
// status name ("not_found", "network"…), non-retryable when another attempt cannot help.
func toTemporal(err error) error {
	var he *hypersdk.Error
	if !errors.As(err, &he) {
		return temporal.NewApplicationError(err.Error(), "internal")
	}
	kind := he.Status.String()
	// A destination locked by another export is, in a wave, most often the attempt of a worker
	// that died on a network file system whose lock lease has not expired yet: retry it.
	if he.Status == hypersdk.StatusAlreadyExists && strings.Contains(he.Message, "another export is writing") {
		return temporal.NewApplicationError(he.Error(), "locked")
	}
	if nonRetryable[he.Status] {
		return temporal.NewNonRetryableApplicationError(he.Error(), kind, nil)
	}
	return temporal.NewApplicationError(he.Error(), kind)
}
