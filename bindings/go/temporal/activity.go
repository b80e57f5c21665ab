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

// Account is a provider config a worker holds, under the name requests use.
type Account struct {
	Provider string          `json:"provider"`
	Config   json.RawMessage `json:"config"`
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
	if err := a.makeDestination(dir); err != nil {
		return ExportResult{}, err
	}
	cl, err := a.client(req.Account, acct)
	if err != nil {
		return ExportResult{}, toTemporal(err)
	}
	opts := map[string]any{}
	for k, v := range req.Options {
		opts[k] = v
	}
	opts["output_dir"] = dir
	// A retry after a worker died adopts the AWS export task that worker left running instead
	// of converting the disk again (the library's option; the others' cloud steps are not
	// adopted yet, see docs/SCALE.md).
	if _, set := opts["reuse_export_task"]; acct.Provider == "aws" && !set {
		opts["reuse_export_task"] = true
	}

	hb := func(p hypersdk.Progress) Heartbeat {
		eta := -1.0
		if p.ETA >= 0 {
			eta = p.ETA.Seconds()
		}
		return Heartbeat{ID: id, Worker: a.identity(), Attempt: info.Attempt, Phase: p.Phase.String(),
			BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, Rate: p.Rate, ETASeconds: eta, Message: p.Message}
	}
	e, err := cl.StartExport(ctx, req.Source, opts, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ExportResult{}, temporal.NewCanceledError(id)
		}
		return ExportResult{}, toTemporal(err)
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
		return ExportResult{}, toTemporal(err)
	}
	final := hb(e.Progress())
	signal(final)
	out := ExportResult{ID: id, Worker: a.identity(), Attempt: info.Attempt, BytesTotal: r.BytesTotal,
		BytesFetched: r.BytesFetched, BytesResumed: r.BytesResumed, ElapsedMS: r.ElapsedMS,
		CleanupError: r.CleanupError}
	for _, f := range r.Files {
		out.Files = append(out.Files, FileResult{Name: f.Name, Path: f.Path, Size: f.Size,
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

// destination is Dest under the output root; Dest must stay inside it.
func (a *Activities) destination(dest string) (string, error) {
	if a.OutputRoot == "" {
		return "", errors.New("the worker has no output root")
	}
	if dest == "" || filepath.IsAbs(dest) || strings.ContainsRune(dest, 0) {
		return "", fmt.Errorf("dest %q: give a folder relative to the output root", dest)
	}
	clean := filepath.Clean(dest)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("dest %q leaves the output root", dest)
	}
	return filepath.Join(a.OutputRoot, clean), nil
}

// makeDestination creates dir under the output root one folder at a time, refusing a symbolic
// link on the way: the root is shared by many hosts and users, and a link planted at
// root/wave1 must not send an export into /etc.
func (a *Activities) makeDestination(dir string) error {
	rel, err := filepath.Rel(a.OutputRoot, dir)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), "invalid_argument", nil)
	}
	cur := a.OutputRoot
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return temporal.NewApplicationError(err.Error(), "io")
		}
		fi, err := os.Lstat(cur)
		if err != nil {
			return temporal.NewApplicationError(err.Error(), "io")
		}
		if !fi.IsDir() {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("%s is not a folder (a link or a file is in the way)", cur), "invalid_argument", nil)
		}
	}
	return nil
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
