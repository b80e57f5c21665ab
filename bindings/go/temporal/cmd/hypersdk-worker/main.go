// hypersdk-worker polls a Temporal task queue for export waves and exports, and runs the
// exports through libhypersdk into a folder shared by all workers.
//
//	hypersdk-worker --address 127.0.0.1:7233 --task-queue hypersdk --accounts accounts.json \
//	    --output-root /mnt/exports --concurrency 4
//
// accounts.json maps account names to provider configs, which hold the credentials and never
// leave the worker, and the export options that are the account's to decide (a request that
// sets one of those, or any option off the account's request_options list, is refused):
//
//	{"aws-prod": {"provider": "aws", "config": {"region": "eu-west-1"},
//	              "options": {"s3_bucket": "corp-exports", "s3_prefix": "waves/"},
//	              "request_options": ["disk_image_format", "part_size"]}}
//
// Without request_options a request may set the options that only tune an export
// (hstemporal.DefaultRequestOptions; docs/SCALE.md lists them).
// The worker stops on SIGINT/SIGTERM: running exports are cancelled (their cloud cleanup runs,
// their partial files stay) and Temporal retries them on another worker, which resumes them.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	hstemporal "github.com/hypersdk/hypersdk/bindings/go/temporal"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hypersdk-worker:", err)
		os.Exit(1)
	}
}

func run() error {
	address := flag.String("address", "127.0.0.1:7233", "Temporal frontend host:port")
	namespace := flag.String("namespace", "default", "Temporal namespace")
	queue := flag.String("task-queue", "hypersdk", "task queue to poll")
	accountsFile := flag.String("accounts", "", "JSON file of accounts: name → {provider, config}")
	root := flag.String("output-root", "", "shared folder the exports' destinations live under")
	concurrency := flag.Int("concurrency", 4, "exports this worker runs at once")
	identity := flag.String("identity", "", "this worker's name in Temporal and in progress (default host:pid)")
	heartbeat := flag.Duration("heartbeat-every", 5*time.Second, "time between two heartbeats of a running export")
	flag.Parse()
	if *accountsFile == "" || *root == "" {
		return fmt.Errorf("--accounts and --output-root are required")
	}
	raw, err := os.ReadFile(*accountsFile)
	if err != nil {
		return err
	}
	var accounts map[string]hstemporal.Account
	if err := json.Unmarshal(raw, &accounts); err != nil {
		// The file holds credentials: name it, never quote it.
		return fmt.Errorf("%s is not a JSON object of accounts", *accountsFile)
	}
	for name, acct := range accounts {
		if err := hstemporal.CheckAccount(name, acct); err != nil {
			return err
		}
	}
	if *concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1")
	}
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c, err := client.Dial(client.Options{HostPort: *address, Namespace: *namespace, Identity: *identity, Logger: logger})
	if err != nil {
		return fmt.Errorf("connecting to Temporal at %s: %w", *address, err)
	}
	defer c.Close()
	acts := &hstemporal.Activities{Accounts: accounts, OutputRoot: *root, Identity: *identity,
		Temporal: c, HeartbeatEvery: *heartbeat}
	defer acts.Close()
	w := worker.New(c, *queue, worker.Options{
		MaxConcurrentActivityExecutionSize: *concurrency,
		// Give running exports time to cancel and clean up in the cloud on SIGTERM.
		WorkerStopTimeout: 2 * time.Minute,
	})
	hstemporal.Register(w, acts)
	return w.Run(worker.InterruptCh())
}
