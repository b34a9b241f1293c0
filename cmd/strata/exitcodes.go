package main

import (
	"errors"
	"fmt"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

// Exit codes (SPEC section 6). Scripts rely on them: never renumber.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitIncomplete  = 3
	exitDamage      = 4
	exitNoRepo      = 10
	exitLocked      = 11
	exitWrongPass   = 12
	exitInterrupted = 130
)

// errDamage marks a check, verify or drill that found damage (exit 4). The
// kinds below wrap it so that each gets its own hint.
var (
	errDamage       = errors.New("damage found")
	errRepoDamage   = fmt.Errorf("repository %w", errDamage)   // check, repair
	errExportDamage = fmt.Errorf("export %w", errDamage)       // graph check
	errVerifyFailed = fmt.Errorf("verification %w", errDamage) // verify
	errDrillFailed  = fmt.Errorf("drill %w", errDamage)        // drill
)

// exitCode maps an error to its exit code: the one place that does.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, errHelpShown):
		return exitUsage
	case errors.Is(err, errDamage), errors.Is(err, snapshot.ErrIntegrity):
		return exitDamage // 4 wins over 3 when a run has both
	case errors.Is(err, snapshot.ErrIncomplete):
		return exitIncomplete
	case errors.Is(err, repo.ErrNoRepository):
		return exitNoRepo
	case errors.Is(err, repo.ErrLocked):
		return exitLocked
	case errors.Is(err, repo.ErrWrongPassword):
		return exitWrongPass
	}
	return exitError
}

// hint says what to do next, for the errors users meet most.
func hint(err error) string {
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return "run 'strata help' or 'strata COMMAND --help' for usage"
	case errors.Is(err, repo.ErrNoRepository):
		return "check -r/--repo or STRATA_REPOSITORY, or create one with 'strata init'"
	case errors.Is(err, repo.ErrWrongPassword):
		return "check STRATA_PASSWORD, --password-file or --password-command; nothing was changed"
	case errors.Is(err, repo.ErrLocked):
		return "another strata process holds the lease; it expires by itself if that process died"
	case errors.Is(err, repo.ErrAlreadyInitialized):
		return "this location already holds a repository; use it, or choose another location"
	case errors.Is(err, snapshot.ErrIncomplete):
		return "the snapshot was saved without the files listed; fix their permissions and back up again"
	case errors.Is(err, snapshot.ErrIntegrity):
		return "fix the export (each problem is listed with tier, line and id), or keep it anyway with --allow-dangling"
	case errors.Is(err, snapshot.ErrNoSnapshot):
		return "list snapshots with 'strata snapshots'"
	case errors.Is(err, errRepoDamage):
		return "each damaged object is listed; 'strata repair --from MIRROR' copies them back from a mirror (docs/runbook.md)"
	case errors.Is(err, errExportDamage):
		return "each problem is listed with tier, line and id; fix the export and check it again"
	case errors.Is(err, errVerifyFailed):
		return "'strata check --read-data' finds damaged objects and 'strata repair' fixes them; the verification record keeps the details"
	case errors.Is(err, errDrillFailed):
		return "the report says which scenario and step failed and why; docs/runbook.md covers each scenario"
	case errors.Is(err, repo.ErrCorrupt), errors.Is(err, repo.ErrBlobNotFound):
		return "the repository is damaged; run 'strata check --read-data' and repair from a mirror"
	case errors.Is(err, snapshot.ErrRestoreFailed):
		return "the files listed could not be written; check the target's permissions and free space"
	case errors.Is(err, backend.ErrNoSpace):
		return "free space in the repository's store; nothing that was stored before is lost"
	}
	return ""
}
