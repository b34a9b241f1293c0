package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
)

// globals are the flags every command takes. Each has an environment
// variable, so scheduled jobs need no flags at all.
type globals struct {
	repo             string
	passwordFile     string
	passwordCommand  string
	insecureNoPasswd bool
	cacheDir         string
	noCache          bool
	json             bool
	quiet            bool
	verbose          int
}

func newGlobals() *globals { return &globals{} }

// globalEnv maps flag names to environment variables.
var globalEnv = map[string]string{
	"repo":                 "STRATA_REPOSITORY",
	"password-file":        "STRATA_PASSWORD_FILE",
	"password-command":     "STRATA_PASSWORD_COMMAND",
	"cache-dir":            "STRATA_CACHE_DIR",
	"no-cache":             "STRATA_NO_CACHE",
	"insecure-no-password": "STRATA_INSECURE_NO_PASSWORD",
	"json":                 "STRATA_JSON",
	"quiet":                "STRATA_QUIET",
}

func (g *globals) register(fs *pflag.FlagSet) {
	fs.StringVarP(&g.repo, "repo", "r", "", "repository location: a path, file://, s3://, gs://, azblob:// or mem:// URL (env STRATA_REPOSITORY)")
	fs.StringVar(&g.passwordFile, "password-file", "", "read the password from this file (env STRATA_PASSWORD_FILE)")
	fs.StringVar(&g.passwordCommand, "password-command", "", "run this shell command and use its output as the password (env STRATA_PASSWORD_COMMAND)")
	fs.BoolVar(&g.insecureNoPasswd, "insecure-no-password", false, "use an empty password (tests and demos only)")
	fs.StringVar(&g.cacheDir, "cache-dir", "", "directory for the local index cache (env STRATA_CACHE_DIR; default: the user cache dir)")
	fs.BoolVar(&g.noCache, "no-cache", false, "keep the index cache in a temporary directory")
	fs.BoolVar(&g.json, "json", false, "print JSON on stdout (docs/json.md) and nothing else")
	fs.BoolVarP(&g.quiet, "quiet", "q", false, "print nothing but errors")
	fs.CountVarP(&g.verbose, "verbose", "v", "print more (repeat for more)")
}

// resolve fills unset flags from the environment.
func (g *globals) resolve(fs *pflag.FlagSet) error {
	for name, env := range globalEnv {
		f := fs.Lookup(name)
		v, ok := os.LookupEnv(env)
		if f == nil || f.Changed || !ok || v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return usagef("environment %s=%q: %v", env, v, err)
		}
	}
	return nil
}

// password returns the repository password from, in order: --insecure-no-
// password, --password-command, --password-file, STRATA_PASSWORD, or a
// prompt when stdin is a terminal.
func (g *globals) password(t *terminal, prompt string, confirm bool) (string, error) {
	if g.insecureNoPasswd {
		return "", nil
	}
	p, err := g.givenPassword(t, prompt, confirm)
	if err == nil && p == "" {
		// An unset variable in a cron job must not create a repository
		// anyone can open: the empty password takes the explicit flag.
		return "", errors.New("empty password: refusing it without --insecure-no-password (check STRATA_PASSWORD, --password-file or --password-command)")
	}
	return p, err
}

func (g *globals) givenPassword(t *terminal, prompt string, confirm bool) (string, error) {
	switch {
	case g.passwordCommand != "":
		return runPasswordCommand(g.passwordCommand)
	case g.passwordFile != "":
		return readPasswordFile(g.passwordFile)
	}
	if p, ok := os.LookupEnv("STRATA_PASSWORD"); ok {
		return p, nil
	}
	return t.readPassword(prompt, confirm)
}

// newPassword returns the password for a new key (key add, key passwd).
func (g *globals) newPassword(t *terminal, file string) (string, error) {
	var p string
	var err error
	switch v, ok := os.LookupEnv("STRATA_NEW_PASSWORD"); {
	case file != "":
		p, err = readPasswordFile(file)
	case ok:
		p = v
	default:
		p, err = t.readPassword("new password: ", true)
	}
	if err == nil && p == "" && !g.insecureNoPasswd {
		return "", errors.New("empty new password: refusing it without --insecure-no-password")
	}
	return p, err
}

func readPasswordFile(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func runPasswordCommand(command string) (string, error) {
	cmd := exec.Command("sh", "-c", command)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("run password command %q: %w: %s", command, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(string(out), "\r\n"), nil
}

func (t *terminal) readPassword(prompt string, confirm bool) (string, error) {
	f, ok := t.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no password given: set STRATA_PASSWORD, --password-file or --password-command (stdin is not a terminal to ask on)")
	}
	fmt.Fprint(t.stderr, prompt)
	p, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(t.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if confirm {
		fmt.Fprint(t.stderr, "enter it again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(t.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if !bytes.Equal(p, again) {
			return "", errors.New("read password: the two entries differ")
		}
	}
	return string(p), nil
}

func (g *globals) location() (string, error) {
	if g.repo == "" {
		return "", usagef("no repository given: use -r/--repo or set STRATA_REPOSITORY")
	}
	return g.repo, nil
}

func (g *globals) repoOptions() repo.Options {
	return repo.Options{CacheDir: g.cacheDir, NoCache: g.noCache}
}

// openRepo opens the repository with the user's password. The caller closes it.
func (g *globals) openRepo(ctx context.Context, t *terminal) (*repo.Repository, error) {
	loc, err := g.location()
	if err != nil {
		return nil, err
	}
	be, err := backend.Open(ctx, loc)
	shown := backend.Redact(loc)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("open repository %s: %w", shown, repo.ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", shown, err)
	}
	// Check for a repository before asking for a password nobody can use.
	if _, err := be.Stat(ctx, "config"); errors.Is(err, backend.ErrNotFound) {
		be.Close()
		return nil, fmt.Errorf("open repository %s: %w", shown, repo.ErrNoRepository)
	}
	pw, err := g.password(t, "password: ", false)
	if err != nil {
		be.Close()
		return nil, err
	}
	r, err := repo.Open(ctx, be, pw, g.repoOptions())
	if err != nil {
		be.Close()
		return nil, err
	}
	return r, nil
}

// withRepo opens the repository, runs fn, and closes everything.
func (g *globals) withRepo(ctx context.Context, t *terminal, fn func(r *repo.Repository) error) error {
	r, err := g.openRepo(ctx, t)
	if err != nil {
		return err
	}
	defer r.Backend().Close()
	defer r.Close()
	return fn(r)
}

// tightGC has the collector run when the heap has grown by a quarter since
// the last collection instead of doubled, unless GOGC says otherwise. For
// file backups and restores of snapshots without graph tiers only: their
// heap is a few reused buffers (chunks, blobs) with little garbage and few
// pointers, so a collection is cheap (no CPU difference measurable on
// 1 GiB) while the default doubling let the peak RSS swing 20 MB above the
// working set from run to run. Graph tiers and replays make a record of
// garbage for every line: restoring the 1 GiB graph took 3.5-4.1 s
// (CPU 6.1-7.1 s) with it and 2.7-3.1 s (CPU 5.0-5.4 s) without, at
// 90 against 128 MiB of peak RSS.
func tightGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
}
