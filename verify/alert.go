package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// AlertOptions say whom to tell about a verification.
type AlertOptions struct {
	// Cmd runs with sh -c, the JSON report on stdin and STRATA_ALERT_*
	// variables in its environment.
	Cmd string
	// Webhook receives the JSON report in a POST.
	Webhook string
	// OnSuccess alerts on a passed verification too (default: failures
	// only).
	OnSuccess bool
	// Timeout bounds each webhook attempt (default 10s); Attempts is how
	// many are made (default 3), with backoff between them.
	Timeout  time.Duration
	Attempts int
	// Backoff is the wait before the second attempt, doubled after each
	// (default 1s).
	Backoff time.Duration
}

// Alert tells the command and the webhook about rep, when it failed (or
// always, with OnSuccess). A failing alert never changes the verdict: the
// errors are returned for the caller to print as warnings.
func Alert(ctx context.Context, rep *Report, opts AlertOptions) []error {
	if rep.OK && !opts.OnSuccess || opts.Cmd == "" && opts.Webhook == "" {
		return nil
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return []error{err}
	}
	var errs []error
	if opts.Cmd != "" {
		if err := alertCmd(ctx, opts.Cmd, rep, body); err != nil {
			errs = append(errs, err)
		}
	}
	if opts.Webhook != "" {
		if err := alertWebhook(ctx, opts, body); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func alertCmd(ctx context.Context, command string, rep *Report, body []byte) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	status, step, detail := "ok", "", ""
	if f := rep.Failed(); f != nil {
		status, step, detail = "failed", f.Name, f.Detail
	}
	cmd.Env = append(os.Environ(),
		"STRATA_ALERT_STATUS="+status,
		"STRATA_ALERT_SNAPSHOT="+rep.SnapshotID,
		"STRATA_ALERT_STEP="+step,
		"STRATA_ALERT_DETAIL="+detail,
		fmt.Sprintf("STRATA_ALERT_RTO_SECONDS=%.3f", rep.RTOEstimateSeconds),
	)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("alert command %q: %w", command, err)
	}
	return nil
}

func alertWebhook(ctx context.Context, opts AlertOptions, body []byte) error {
	timeout, attempts, backoff := opts.Timeout, opts.Attempts, opts.Backoff
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if attempts <= 0 {
		attempts = 3
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	client := &http.Client{Timeout: timeout}
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, opts.Webhook, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("alert webhook %s: %w", opts.Webhook, err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "strata")
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
			if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
				return fmt.Errorf("alert webhook %s: %w", redactURL(opts.Webhook), err) // the request is wrong: retrying will not help
			}
		}
		last = err
	}
	if errors.Is(last, context.Canceled) {
		return last
	}
	return fmt.Errorf("alert webhook %s: %d attempts failed, the last: %w", redactURL(opts.Webhook), attempts, last)
}

// redactURL hides a webhook's credentials (user info, query) in messages.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i] + "?…"
	}
	if s, rest, ok := strings.Cut(u, "://"); ok {
		if at := strings.IndexByte(rest, '@'); at >= 0 && at < strings.IndexByte(rest+"/", '/') {
			rest = "…@" + rest[at+1:]
		}
		u = s + "://" + rest
	}
	return u
}
