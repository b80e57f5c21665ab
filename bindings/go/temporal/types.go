// Package temporal runs hypersdk exports as Temporal activities and export waves as a Temporal
// workflow, so that a wave of hundreds of exports spreads over many worker hosts and a lost
// worker costs only the ranges it had in flight.
//
//   - Activity Export (Activities.Export): one export through the Go binding. It heartbeats the
//     latest progress, turns activity cancellation into an export cancel (and waits for the
//     cloud cleanup), and maps the library's error kinds to retryable or non-retryable errors.
//   - Workflow ExportWave: fans a list of exports out under per-provider and per-account
//     concurrency limits, collects the results, and answers the "state" query with every
//     export's live phase, bytes and ETA.
//
// Credentials never travel through Temporal (its history is stored and shown in its UI): a
// request names an account, and each worker holds the accounts' provider configs
// (cmd/hypersdk-worker --accounts FILE). The destination is a folder under the worker's output
// root, which all workers share (NFS or similar); an export's ID is derived from its account,
// source and destination, so a retry on another worker writes into the same place, takes the
// destination lock, finds the resume journal and fetches only the missing ranges.
package temporal

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Names under which the worker registers the workflow and the activity, and the names of the
// query and the signal the wave uses.
const (
	WorkflowName   = "ExportWave"
	ActivityName   = "Export"
	QueryState     = "state"
	SignalProgress = "export-progress"
)

// ExportRequest is one export of a wave.
type ExportRequest struct {
	// Account names a provider config held by the workers (never the credentials themselves).
	Account string `json:"account"`
	// Provider is the account's provider ("aws", "vsphere", "http"…): the wave limits
	// concurrency per provider, and the worker checks it matches the account.
	Provider string `json:"provider"`
	// Source is what to export (an instance id, a VM path, a URL…).
	Source string `json:"source"`
	// Dest is a folder relative to the workers' output root (no "..", not absolute).
	Dest string `json:"dest"`
	// Options are the library's export options, those the account lets a request set
	// (Account.RequestOptions; by default the ones that only tune an export): where the cloud
	// writes and what is deleted or replaced are the account's. output_dir is set from Dest.
	Options map[string]any `json:"options,omitempty"`
	// ProgressEvery is how often the export signals its progress to its wave (the wave sets
	// it from WaveRequest.ProgressEvery; 0: 30 s; negative: never).
	ProgressEvery time.Duration `json:"progress_every,omitempty"`
}

// ID is the export's stable identity: the same account, source and destination give the same
// ID on every attempt and every worker (it is the activity ID in the wave).
func (r ExportRequest) ID() string {
	h := sha256.Sum256([]byte(r.Account + "\x00" + r.Source + "\x00" + r.Dest))
	return "export-" + hex.EncodeToString(h[:8])
}

// FileResult is one file of a finished export.
type FileResult struct {
	Name         string `json:"name"`
	Path         string `json:"path"`
	Size         uint64 `json:"size"`
	FetchedBytes uint64 `json:"fetched_bytes"`
	ResumedBytes uint64 `json:"resumed_bytes"`
}

// ExportResult is what a successful export activity returns.
type ExportResult struct {
	ID           string       `json:"id"`
	Worker       string       `json:"worker"`
	Attempt      int32        `json:"attempt"`
	Files        []FileResult `json:"files"`
	BytesTotal   uint64       `json:"bytes_total"`
	BytesFetched uint64       `json:"bytes_fetched"`
	BytesResumed uint64       `json:"bytes_resumed"`
	ElapsedMS    uint64       `json:"elapsed_ms"`
	// CleanupError is set when the export succeeded but a cloud cleanup step did not.
	CleanupError string `json:"cleanup_error,omitempty"`
}

// Heartbeat is the progress an export activity reports, as heartbeat details and as the
// progress signal to its wave.
type Heartbeat struct {
	ID         string  `json:"id"`
	Worker     string  `json:"worker"`
	Attempt    int32   `json:"attempt"`
	Phase      string  `json:"phase"`
	BytesDone  uint64  `json:"bytes_done"`
	BytesTotal uint64  `json:"bytes_total"`
	Rate       float64 `json:"rate"`
	// ETASeconds is negative while unknown.
	ETASeconds float64 `json:"eta_seconds"`
	Message    string  `json:"message,omitempty"`
}

// WaveRequest is a wave of exports and how to run them.
type WaveRequest struct {
	Exports []ExportRequest `json:"exports"`
	// MaxConcurrent caps the exports in flight in the whole wave (0: no cap beyond the others).
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// ProviderLimits caps exports in flight per provider, AccountLimits per account: cloud
	// APIs throttle export tasks per account and region.
	ProviderLimits map[string]int `json:"provider_limits,omitempty"`
	AccountLimits  map[string]int `json:"account_limits,omitempty"`
	// TaskQueue the workers poll (default: the workflow's own).
	TaskQueue string `json:"task_queue,omitempty"`
	// HeartbeatTimeout: a worker silent this long is presumed dead and its export retried
	// elsewhere (default 60 s).
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// StartToClose bounds one attempt (default 48 h: a 5 TB disk over a slow link).
	StartToClose time.Duration `json:"start_to_close,omitempty"`
	// MaxAttempts per export (default 5); non-retryable errors stop at the first.
	MaxAttempts int32 `json:"max_attempts,omitempty"`
	// RetryInterval is the first wait before a retry (default 5 s, doubling).
	RetryInterval time.Duration `json:"retry_interval,omitempty"`
	// ProgressEvery is how often a running export signals its progress to the wave, for the
	// state query (default 30 s; negative: never). Each signal is an event in the wave's
	// history, so keep it coarse for long exports (docs/SCALE.md).
	ProgressEvery time.Duration `json:"progress_every,omitempty"`
}

// Status of one export in a wave.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusDone      = "done"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// ExportState is one export as the wave sees it.
type ExportState struct {
	ID       string `json:"id"`
	Account  string `json:"account"`
	Provider string `json:"provider"`
	Source   string `json:"source"`
	Dest     string `json:"dest"`
	Status   string `json:"status"`
	// Attempt is the latest attempt reported (1 for the first).
	Attempt    int32   `json:"attempt"`
	Worker     string  `json:"worker,omitempty"`
	Phase      string  `json:"phase,omitempty"`
	BytesDone  uint64  `json:"bytes_done"`
	BytesTotal uint64  `json:"bytes_total"`
	Rate       float64 `json:"rate"`
	ETASeconds float64 `json:"eta_seconds"`
	Message    string  `json:"message,omitempty"`
	// ErrorKind is the library's error kind ("not_found", "network"…) for a failed export.
	ErrorKind string        `json:"error_kind,omitempty"`
	Error     string        `json:"error,omitempty"`
	Result    *ExportResult `json:"result,omitempty"`
}

// WaveState is the answer to the state query, and the wave's result.
type WaveState struct {
	Exports   []ExportState `json:"exports"`
	Pending   int           `json:"pending"`
	Running   int           `json:"running"`
	Done      int           `json:"done"`
	Failed    int           `json:"failed"`
	Cancelled int           `json:"cancelled"`
}
