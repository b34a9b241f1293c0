// Package s3test runs a real S3 server (versitygw, posix gateway) on the
// loopback interface for tests, so the S3 path is tested against real
// conditional writes, signatures and paging rather than a mock.
//
// Typical use, one server per test binary:
//
//	var srv *s3test.Server
//	var srvErr error
//
//	func TestMain(m *testing.M) {
//		srv, srvErr = s3test.StartServer()
//		code := m.Run()
//		if srv != nil {
//			srv.Stop()
//		}
//		os.Exit(code)
//	}
//
//	func TestS3(t *testing.T) {
//		s3test.Require(t, srvErr) // skips, or fails under STRATA_REQUIRE_S3=1
//		url := srv.NewBucket("mybucket")
//		...
//	}
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Credentials the server accepts and the SDK is given.
const (
	AccessKey = "testkey"
	SecretKey = "testsecret123"
	Region    = "us-east-1"
)

// InstallCommand installs the versitygw version these tests are written for.
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// ErrNotInstalled means no versitygw binary was found.
var ErrNotInstalled = errors.New("versitygw not found (set STRATA_VERSITYGW, or install it with: " + InstallCommand + ")")

// readyTimeout bounds the wait for /health; versitygw is normally ready in
// a fraction of a second.
const readyTimeout = 20 * time.Second

// Server is a running versitygw serving the directories under its posix root
// as buckets.
type Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint string

	tmp     string // removed by Stop
	data    string // posix root: each directory is a bucket
	cmd     *exec.Cmd
	exited  chan struct{}
	output  *lockedBuffer
	stopped sync.Once
	buckets atomic.Int64 // numbers FreshBucket names
}

// Binary finds versitygw: $STRATA_VERSITYGW, else $GOBIN or GOPATH/bin, else
// PATH. The error wraps ErrNotInstalled when nothing is found (but not when
// STRATA_VERSITYGW names a missing file).
func Binary() (string, error) {
	if p := os.Getenv("STRATA_VERSITYGW"); p != "" {
		// An explicit setting that is wrong is a configuration error, never
		// a reason to skip.
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("STRATA_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if gopath := goEnvGOPATH(); gopath != "" {
		for _, d := range filepath.SplitList(gopath) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", ErrNotInstalled
}

// goEnvGOPATH asks the go command (which knows go.env and GOENV settings),
// falling back to go/build's default when no go command is around.
func goEnvGOPATH() string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		if s := string(bytes.TrimSpace(out)); s != "" {
			return s
		}
	}
	return build.Default.GOPATH
}

// Require skips tb when err says versitygw is missing, or fails it when
// STRATA_REQUIRE_S3=1 (CI must not silently skip the S3 suite) or when the
// server failed for any other reason.
func Require(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotInstalled) && os.Getenv("STRATA_REQUIRE_S3") != "1" {
		tb.Skipf("skipping S3 tests: %v", err)
	}
	tb.Fatalf("S3 test server: %v", err)
}

// Start starts a server for one test (or benchmark) and stops it when tb
// ends. It skips or fails as Require does when versitygw is missing.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartServer()
	Require(tb, err)
	tb.Cleanup(s.Stop)
	return s
}

// StartServer starts versitygw on a free loopback port and points the AWS
// SDK of this process at fixed test credentials, with every other
// credential source (EC2 metadata, config files, profiles) switched off, so
// nothing but 127.0.0.1 is ever contacted.
func StartServer() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if err := setAWSEnv(); err != nil {
		return nil, err
	}
	// The port is free when we probe it; another process could take it
	// before versitygw binds, so a failed start is retried on a new port.
	var lastErr error
	for range 3 {
		s, err := start(bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func setAWSEnv() error {
	set := map[string]string{
		"AWS_ACCESS_KEY_ID":           AccessKey,
		"AWS_SECRET_ACCESS_KEY":       SecretKey,
		"AWS_REGION":                  Region,
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	}
	for k, v := range set {
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("set %s: %w", k, err)
		}
	}
	// Sources that would override the keys above or send requests elsewhere.
	for _, k := range []string{
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
	} {
		if err := os.Unsetenv(k); err != nil {
			return fmt.Errorf("unset %s: %w", k, err)
		}
	}
	return nil
}

func start(bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "strata-s3test-")
	if err != nil {
		return nil, fmt.Errorf("create server root: %w", err)
	}
	data := filepath.Join(tmp, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("create server root: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin, "--port", addr, "--health", "/health", "--quiet", "posix", data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.SysProcAttr = procAttr()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{
		Endpoint: "http://" + addr,
		tmp:      tmp,
		data:     data,
		cmd:      cmd,
		exited:   make(chan struct{}),
		output:   out,
	}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("start versitygw on %s: %w; output:\n%s", addr, err, out.String())
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/health", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited: %v", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %v", readyTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop terminates the server (by its PID) and removes its files. It is safe
// to call more than once.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		_ = os.RemoveAll(s.tmp)
	})
}

// NewBucket creates an empty bucket (a directory under the posix root,
// which versitygw picks up while running) and returns its URL. Names follow
// S3 rules: 3–63 characters of lowercase letters, digits, '.' and '-'. It
// panics on an invalid name or a failed mkdir, both bugs in the test.
func (s *Server) NewBucket(name string) string {
	if err := validBucketName(name); err != nil {
		panic(fmt.Sprintf("s3test: %v", err))
	}
	if err := os.Mkdir(filepath.Join(s.data, name), 0o700); err != nil {
		panic(fmt.Sprintf("s3test: create bucket %s: %v", name, err))
	}
	return s.URL(name, "")
}

// FreshBucket creates an empty bucket named base-N with an N this server
// has not used, and returns the name (pass it to URL). Tests that run
// repeatedly (-count) or in parallel use it to never share a bucket.
func (s *Server) FreshBucket(base string) string {
	name := fmt.Sprintf("%s-%d", base, s.buckets.Add(1))
	s.NewBucket(name)
	return name
}

// URL is the gocloud s3:// URL of bucket with an optional key prefix. The
// checksum settings stop the SDK from adding and demanding checksums that
// third-party servers do not all implement (and from warning about it).
func (s *Server) URL(bucket, prefix string) string {
	q := url.Values{}
	q.Set("endpoint", s.Endpoint)
	q.Set("region", Region)
	q.Set("use_path_style", "true")
	q.Set("request_checksum_calculation", "when_required")
	q.Set("response_checksum_validation", "when_required")
	u := url.URL{Scheme: "s3", Host: bucket, RawQuery: q.Encode()}
	if prefix != "" {
		u.Path = "/" + prefix
	}
	return u.String()
}

// Root is the posix directory holding the buckets, for tests that inspect
// or damage what the server stored.
func (s *Server) Root() string { return s.data }

func validBucketName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("bucket name %q: want 3-63 characters", name)
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return fmt.Errorf("bucket name %q: only lowercase letters, digits, '.' and '-'", name)
		}
	}
	return nil
}

// lockedBuffer collects the server's output; the process writes it while
// tests may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep memory bounded if the server turns chatty.
	if b.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
