package verify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func failedReport() *Report {
	return &Report{SnapshotID: "ab12", Steps: []Step{{Name: StepIntegrity, OK: false, Detail: "data/ab/ab12: its bytes do not hash to its name"}}}
}

func TestAlertWebhook(t *testing.T) {
	for _, tc := range []struct {
		name      string
		statuses  []int // responses in turn (the last repeats)
		wantCalls int32
		wantErr   string
	}{
		{name: "accepted", statuses: []int{204}, wantCalls: 1},
		{name: "retried after 5xx", statuses: []int{503, 500, 200}, wantCalls: 3},
		{name: "gives up after 3", statuses: []int{500}, wantCalls: 3, wantErr: "3 attempts failed, the last: HTTP 500"},
		{name: "4xx is not retried", statuses: []int{404}, wantCalls: 1, wantErr: "HTTP 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				body, _ := io.ReadAll(r.Body)
				var rep Report
				if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &rep) != nil || rep.SnapshotID != "ab12" {
					t.Errorf("webhook got %s %q %q", r.Method, r.Header.Get("Content-Type"), body)
				}
				w.WriteHeader(tc.statuses[min(n, len(tc.statuses))-1])
			}))
			defer srv.Close()
			errs := Alert(context.Background(), failedReport(), AlertOptions{Webhook: srv.URL + "/hook?token=secret", Backoff: time.Millisecond})
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("%d calls, want %d", got, tc.wantCalls)
			}
			switch {
			case tc.wantErr == "" && len(errs) > 0:
				t.Errorf("errors %v", errs)
			case tc.wantErr != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.wantErr)):
				t.Errorf("errors %v, want one naming %q", errs, tc.wantErr)
			case len(errs) > 0 && strings.Contains(errs[0].Error(), "secret"):
				t.Errorf("the error shows the webhook's query: %v", errs[0])
			}
		})
	}
}

func TestAlertCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "alert")
	cmd := `printf '%s %s\n' "$STRATA_ALERT_STATUS" "$STRATA_ALERT_STEP" > ` + out + `; cat >> ` + out
	if errs := Alert(context.Background(), failedReport(), AlertOptions{Cmd: cmd}); len(errs) > 0 {
		t.Fatal(errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "failed integrity\n{") || !strings.Contains(string(b), `"snapshot_id":"ab12"`) {
		t.Errorf("the command got %q", b)
	}
	// Success alerts only with OnSuccess; a failing command is an error.
	ok := &Report{OK: true, SnapshotID: "cd34"}
	if errs := Alert(context.Background(), ok, AlertOptions{Cmd: "exit 1"}); len(errs) != 0 {
		t.Errorf("alerted on success without OnSuccess: %v", errs)
	}
	if errs := Alert(context.Background(), ok, AlertOptions{Cmd: "exit 1", OnSuccess: true}); len(errs) != 1 {
		t.Errorf("a failing alert command: %v, want one error", errs)
	}
}
