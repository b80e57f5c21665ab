package temporal

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// wave is the workflow's state: what the query shows and what the limits count.
type wave struct {
	req        WaveRequest
	exports    []ExportState
	index      map[string]int
	inFlight   int
	byProvider map[string]int
	byAccount  map[string]int
}

func newWave(req WaveRequest) *wave {
	w := &wave{req: req, index: map[string]int{}, byProvider: map[string]int{}, byAccount: map[string]int{}}
	for i, r := range req.Exports {
		w.exports = append(w.exports, ExportState{ID: r.ID(), Account: r.Account, Provider: r.Provider,
			Source: r.Source, Dest: r.Dest, Status: StatusPending, ETASeconds: -1})
		w.index[r.ID()] = i
	}
	return w
}

// allowed reports whether export i may start now under every limit.
func (w *wave) allowed(i int) bool {
	r := w.req.Exports[i]
	under := func(limits map[string]int, key string, running map[string]int) bool {
		l, ok := limits[key]
		return !ok || l <= 0 || running[key] < l
	}
	return (w.req.MaxConcurrent <= 0 || w.inFlight < w.req.MaxConcurrent) &&
		under(w.req.ProviderLimits, r.Provider, w.byProvider) &&
		under(w.req.AccountLimits, r.Account, w.byAccount)
}

func (w *wave) take(i int, delta int) {
	r := w.req.Exports[i]
	w.inFlight += delta
	w.byProvider[r.Provider] += delta
	w.byAccount[r.Account] += delta
}

// progress applies a progress signal; a report from an older attempt (a worker presumed dead
// that still talks) never overwrites a newer one's.
func (w *wave) progress(h Heartbeat) {
	i, ok := w.index[h.ID]
	if !ok {
		return
	}
	s := &w.exports[i]
	if s.Status != StatusRunning || h.Attempt < s.Attempt {
		return
	}
	s.Attempt, s.Worker, s.Phase, s.Message = h.Attempt, h.Worker, h.Phase, h.Message
	s.BytesDone, s.BytesTotal, s.Rate, s.ETASeconds = h.BytesDone, h.BytesTotal, h.Rate, h.ETASeconds
}

func (w *wave) finish(i int, res ExportResult, err error) {
	s := &w.exports[i]
	s.Rate, s.ETASeconds = 0, -1
	var canceled *temporal.CanceledError
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		s.Status, s.Phase = StatusDone, "done"
		s.Result = &res
		s.Attempt, s.Worker = res.Attempt, res.Worker
		s.BytesDone, s.BytesTotal = res.BytesTotal, res.BytesTotal
	case errors.As(err, &canceled):
		s.Status, s.Phase = StatusCancelled, "cancelled"
	case errors.As(err, &app):
		s.Status, s.Phase = StatusFailed, "failed"
		s.ErrorKind, s.Error = app.Type(), app.Error()
	default:
		// Timeouts (a worker gone on its last attempt) and other Temporal failures.
		s.Status, s.Phase = StatusFailed, "failed"
		s.ErrorKind, s.Error = "temporal", err.Error()
	}
}

func (w *wave) snapshot() WaveState {
	st := WaveState{Exports: append([]ExportState(nil), w.exports...)}
	for _, e := range w.exports {
		switch e.Status {
		case StatusPending:
			st.Pending++
		case StatusRunning:
			st.Running++
		case StatusDone:
			st.Done++
		case StatusFailed:
			st.Failed++
		case StatusCancelled:
			st.Cancelled++
		}
	}
	return st
}

// ExportWave runs a wave of exports: each starts when every limit allows (in the order given),
// runs as an Export activity with retries, and ends done, failed or cancelled. The wave
// completes when every export has ended, and returns the final state (failed exports are in it;
// they do not fail the wave). Cancelling the wave cancels every running export and waits for
// their cleanup; exports not started yet are marked cancelled.
//
// The "state" query answers with the live WaveState; running exports report their progress
// with a signal every WaveRequest.ProgressEvery.
func ExportWave(ctx workflow.Context, req WaveRequest) (WaveState, error) {
	seen := map[string]bool{}
	for _, r := range req.Exports {
		if seen[r.ID()] {
			return WaveState{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("the wave lists %s to %s twice", r.Source, r.Dest), "invalid_argument", nil)
		}
		seen[r.ID()] = true
	}
	w := newWave(req)
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (WaveState, error) {
		return w.snapshot(), nil
	}); err != nil {
		return WaveState{}, err
	}

	opts := workflow.ActivityOptions{
		TaskQueue:           req.TaskQueue,
		StartToCloseTimeout: orDefault(req.StartToClose, 48*time.Hour),
		HeartbeatTimeout:    orDefault(req.HeartbeatTimeout, time.Minute),
		// A cancelled wave waits for each export's cleanup (cloud task cancelled, lease
		// aborted) before it ends.
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    orDefault(req.RetryInterval, 5*time.Second),
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
			MaximumAttempts:    max(req.MaxAttempts, 0),
		},
	}
	if opts.RetryPolicy.MaximumAttempts == 0 {
		opts.RetryPolicy.MaximumAttempts = 5
	}

	signals := workflow.GetSignalChannel(ctx, SignalProgress)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var h Heartbeat
			if !signals.Receive(ctx, &h) {
				return
			}
			w.progress(h)
		}
	})

	ended := 0
	for i := range req.Exports {
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer func() { ended++ }()
			// Waits for a free place under every limit; a cancelled wave ends the wait.
			if err := workflow.Await(gctx, func() bool { return w.allowed(i) }); err != nil {
				w.exports[i].Status, w.exports[i].Phase = StatusCancelled, "cancelled"
				return
			}
			w.take(i, 1)
			defer w.take(i, -1)
			r := req.Exports[i]
			if req.ProgressEvery != 0 {
				r.ProgressEvery = req.ProgressEvery
			}
			s := &w.exports[i]
			s.Status, s.Phase, s.Attempt = StatusRunning, "queued", 1
			actx := workflow.WithActivityOptions(gctx, withID(opts, s.ID))
			var res ExportResult
			err := workflow.ExecuteActivity(actx, ActivityName, r).Get(actx, &res)
			w.finish(i, res, err)
		})
	}
	// Every export ends even when the wave is cancelled (the running ones after their
	// cleanup), so wait on a context the cancellation does not end.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := workflow.Await(dctx, func() bool { return ended == len(req.Exports) }); err != nil {
		return w.snapshot(), err
	}
	if err := ctx.Err(); err != nil {
		return w.snapshot(), temporal.NewCanceledError(w.snapshot())
	}
	return w.snapshot(), nil
}

func withID(o workflow.ActivityOptions, id string) workflow.ActivityOptions {
	o.ActivityID = id
	return o
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
