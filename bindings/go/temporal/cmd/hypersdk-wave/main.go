// hypersdk-wave submits a wave of exports to Temporal and follows it through the wave's state
// query until it ends; it can also follow or cancel a wave already running.
//
//	hypersdk-wave submit [--id ID] wave.json   start the wave, print its progress, exit 0 when
//	                                           every export is done (2 when some failed)
//	hypersdk-wave watch ID                     follow a running wave
//	hypersdk-wave cancel ID                    cancel a wave (running exports clean up)
//
// wave.json: {"exports": [{"account": "aws-prod", "provider": "aws", "source": "i-0abc",
// "dest": "wave1/web01", "options": {"disk_image_format": "vhd"}}], "provider_limits": {"aws": 5},
// "account_limits": {"aws-prod": 3}, "heartbeat_timeout": "60s", "progress_every": "30s"}.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	hstemporal "github.com/hypersdk/hypersdk/bindings/go/temporal"
	"go.temporal.io/sdk/client"
)

// waveFile is a WaveRequest with durations written as text ("90s", "2h").
type waveFile struct {
	Exports          []hstemporal.ExportRequest `json:"exports"`
	MaxConcurrent    int                        `json:"max_concurrent"`
	ProviderLimits   map[string]int             `json:"provider_limits"`
	AccountLimits    map[string]int             `json:"account_limits"`
	HeartbeatTimeout string                     `json:"heartbeat_timeout"`
	StartToClose     string                     `json:"start_to_close"`
	MaxAttempts      int32                      `json:"max_attempts"`
	RetryInterval    string                     `json:"retry_interval"`
	ProgressEvery    string                     `json:"progress_every"`
}

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		// Errors carry what Temporal, the workers and the clouds said.
		fmt.Fprintln(os.Stderr, "hypersdk-wave:", hstemporal.Printable(err.Error()))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	fs := flag.NewFlagSet("hypersdk-wave", flag.ContinueOnError)
	address := fs.String("address", "127.0.0.1:7233", "Temporal frontend host:port")
	namespace := fs.String("namespace", "default", "Temporal namespace")
	queue := fs.String("task-queue", "hypersdk", "task queue the workers poll")
	id := fs.String("id", "", "workflow ID of the wave (submit: default derived from the file's content)")
	every := fs.Duration("every", 2*time.Second, "time between two progress lines")
	jsonOut := fs.Bool("json", false, "print the final state as JSON")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	rest := fs.Args()
	if len(rest) != 2 {
		return 2, errors.New("usage: hypersdk-wave [flags] submit FILE | watch ID | cancel ID")
	}
	c, err := client.Dial(client.Options{HostPort: *address, Namespace: *namespace})
	if err != nil {
		return 1, fmt.Errorf("connecting to Temporal at %s: %w", *address, err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	switch rest[0] {
	case "submit":
		raw, err := os.ReadFile(rest[1])
		if err != nil {
			return 1, err
		}
		req, err := parseWave(raw)
		if err != nil {
			return 2, fmt.Errorf("%s: %w", rest[1], err)
		}
		req.TaskQueue = *queue
		wid := *id
		if wid == "" {
			h := sha256.Sum256(raw)
			wid = "wave-" + hex.EncodeToString(h[:6])
		}
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wid, TaskQueue: *queue},
			hstemporal.WorkflowName, req)
		if err != nil {
			return 1, err
		}
		fmt.Printf("wave %s started (%d exports)\n", hstemporal.Printable(run.GetID()), len(req.Exports))
		return follow(ctx, c, run.GetID(), *every, *jsonOut)
	case "watch":
		return follow(ctx, c, rest[1], *every, *jsonOut)
	case "cancel":
		if err := c.CancelWorkflow(ctx, rest[1], ""); err != nil {
			return 1, err
		}
		fmt.Printf("wave %s: cancel requested\n", hstemporal.Printable(rest[1]))
		return 0, nil
	}
	return 2, fmt.Errorf("unknown command %q (submit, watch, cancel)", rest[0])
}

func parseWave(raw []byte) (hstemporal.WaveRequest, error) {
	var f waveFile
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return hstemporal.WaveRequest{}, err
	}
	if len(f.Exports) == 0 {
		return hstemporal.WaveRequest{}, errors.New("no exports")
	}
	req := hstemporal.WaveRequest{Exports: f.Exports, MaxConcurrent: f.MaxConcurrent,
		ProviderLimits: f.ProviderLimits, AccountLimits: f.AccountLimits, MaxAttempts: f.MaxAttempts}
	for _, d := range []struct {
		name string
		text string
		into *time.Duration
	}{
		{"heartbeat_timeout", f.HeartbeatTimeout, &req.HeartbeatTimeout},
		{"start_to_close", f.StartToClose, &req.StartToClose},
		{"retry_interval", f.RetryInterval, &req.RetryInterval},
		{"progress_every", f.ProgressEvery, &req.ProgressEvery},
	} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil {
			return req, fmt.Errorf("%s: %w", d.name, err)
		}
		*d.into = v
	}
	return req, nil
}

// follow prints the wave's state every interval until it ends. Exit code: 0 all done, 2 some
// export failed or was cancelled.
func follow(ctx context.Context, c client.Client, id string, every time.Duration, jsonOut bool) (int, error) {
	run := c.GetWorkflow(ctx, id, "")
	result := make(chan error, 1)
	var final hstemporal.WaveState
	go func() { result <- run.Get(ctx, &final) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case err := <-result:
			if err != nil && len(final.Exports) == 0 {
				return 1, fmt.Errorf("wave %s: %w", id, err)
			}
			printState(os.Stdout, final)
			if jsonOut {
				printJSON(os.Stdout, final)
			}
			if err != nil || final.Failed > 0 || final.Cancelled > 0 {
				return 2, err
			}
			return 0, nil
		case <-tick.C:
			v, err := c.QueryWorkflow(ctx, id, "", hstemporal.QueryState)
			if err != nil {
				continue // the wave may be between tasks; the next tick asks again
			}
			var st hstemporal.WaveState
			if v.Get(&st) == nil {
				printState(os.Stdout, st)
			}
		case <-ctx.Done():
			return 1, ctx.Err()
		}
	}
}

// printState writes the wave's state. Every text in it came from outside (the wave's history:
// export names and sources from the wave file, phases, messages and errors from workers and
// clouds) and is printed through Printable.
func printState(w io.Writer, st hstemporal.WaveState) {
	var done, total uint64
	for _, e := range st.Exports {
		done += e.BytesDone
		total += e.BytesTotal
	}
	p := hstemporal.Printable
	fmt.Fprintf(w, "%s  done %d, running %d, pending %d, failed %d, cancelled %d — %s of %s\n",
		time.Now().Format("15:04:05"), st.Done, st.Running, st.Pending, st.Failed, st.Cancelled,
		size(done), size(total))
	for _, e := range st.Exports {
		switch e.Status {
		case hstemporal.StatusRunning:
			eta := "?"
			if e.ETASeconds >= 0 {
				eta = (time.Duration(e.ETASeconds) * time.Second).String()
			}
			fmt.Fprintf(w, "  %-14s %-10s %s/%s %s/s eta %s attempt %d on %s %s\n", p(e.Dest), p(e.Phase),
				size(e.BytesDone), size(e.BytesTotal), size(uint64(e.Rate)), eta, e.Attempt, p(e.Worker), p(e.Message))
		case hstemporal.StatusFailed:
			fmt.Fprintf(w, "  %-14s failed: %s\n", p(e.Dest), p(e.Error))
		}
	}
}

// printJSON writes the state as JSON, every string's control characters escaped as JSON's own
// \u escapes (the same value, safe on a terminal).
func printJSON(w io.Writer, st hstemporal.WaveState) {
	out, _ := json.MarshalIndent(st, "", "  ")
	fmt.Fprintln(w, string(hstemporal.PrintableJSON(out)))
}

func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
