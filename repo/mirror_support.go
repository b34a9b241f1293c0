package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
)

// This file holds what replicas (init --from-repo, mirror) need from the
// repository: the config's fixed key, and telling whether another store is
// this repository's replica, is empty, or holds something else.

// ConfigKey is the backend key of the config object, the one object whose
// name is fixed rather than the hash of its bytes.
const ConfigKey = configKey

// ErrOtherRepository means a store meant as this repository's replica holds
// a different repository (its config is not byte-identical to ours).
var ErrOtherRepository = errors.New("holds another repository")

// ErrNotEmpty means a store meant to become a replica holds objects but no
// repository config.
var ErrNotEmpty = errors.New("is not empty")

// ConfigBytes returns the config object exactly as stored, for copying it
// to a replica.
func (r *Repository) ConfigBytes(ctx context.Context) ([]byte, error) {
	stored, err := backend.LoadAll(ctx, r.be, configKey)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return stored, nil
}

// CheckReplica tells what dst holds with respect to r: replica is true when
// dst's config is byte-identical to r's (dst is r's replica, possibly
// behind). When dst has no config it must hold nothing but key files that
// r also has (what an interrupted InitReplica leaves; leases are ignored):
// replica is then false and err nil, and dst may become a replica.
// Anything else is an error wrapping ErrOtherRepository or ErrNotEmpty.
func (r *Repository) CheckReplica(ctx context.Context, dst backend.Backend) (replica bool, err error) {
	where := backend.Location(dst)
	theirs, err := backend.LoadAll(ctx, dst, configKey)
	switch {
	case err == nil:
		ours, err := r.ConfigBytes(ctx)
		if err != nil {
			return false, err
		}
		if bytes.Equal(ours, theirs) {
			return true, nil
		}
		return false, fmt.Errorf("%s %w (%s; this repository is %s)", where, ErrOtherRepository, r.describeForeign(theirs), r.cfg.ID[:8])
	case !errors.Is(err, backend.ErrNotFound):
		return false, fmt.Errorf("check %s: %w", where, err)
	}
	ourKeys := map[string]bool{}
	err = r.be.List(ctx, "keys/", func(fi backend.ObjectInfo) error {
		ourKeys[fi.Key] = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("list keys: %w", err)
	}
	var stray []string
	err = dst.List(ctx, "", func(fi backend.ObjectInfo) error {
		if !ourKeys[fi.Key] && !strings.HasPrefix(fi.Key, PrefixLocks+"/") {
			stray = append(stray, fi.Key)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("list %s: %w", where, err)
	}
	if len(stray) > 0 {
		return false, fmt.Errorf("%s %w: %d objects but no repository config (e.g. %s)", where, ErrNotEmpty, len(stray), stray[0])
	}
	return false, nil
}

// describeForeign explains a config that is not ours: another repository
// (its id, when our key happens to open it) or something unreadable.
func (r *Repository) describeForeign(stored []byte) string {
	plain, err := r.openObject(stored, configKey)
	if err != nil {
		return "its config does not open with this repository's key"
	}
	var c Config
	if json.Unmarshal(plain, &c) != nil || len(c.ID) < 8 {
		return "its config is not a strata config"
	}
	return "repository " + c.ID[:8]
}

// InitReplica makes the empty store dst a replica of r: every key file of
// r, then r's config, copied byte for byte, so the replica has the same
// repository id, master key and passwords. As in Init the keys go first and
// the config last: a crash in between leaves key files and no repository,
// and running InitReplica again finishes. dst must pass CheckReplica without
// being a replica already (that is ErrAlreadyInitialized). It returns the
// number of objects and bytes written.
func InitReplica(ctx context.Context, r *Repository, dst backend.Backend) (objects int, size int64, err error) {
	replica, err := r.CheckReplica(ctx, dst)
	if err != nil {
		return 0, 0, err
	}
	if replica {
		return 0, 0, fmt.Errorf("%w (already a replica of this repository)", ErrAlreadyInitialized)
	}
	var keys []string
	err = r.be.List(ctx, "keys/", func(fi backend.ObjectInfo) error {
		keys = append(keys, fi.Key)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("init replica: list keys: %w", err)
	}
	for _, key := range keys {
		id, perr := chunk.ParseID(strings.TrimPrefix(key, "keys/"))
		if perr != nil {
			continue // not a key file; check reports it
		}
		stored, err := backend.LoadAll(ctx, r.be, key)
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return objects, size, fmt.Errorf("init replica: %w", err)
		}
		if chunk.ObjectID(stored) != id {
			return objects, size, fmt.Errorf("init replica: %s: stored bytes do not hash to the name: %w", key, ErrCorrupt)
		}
		switch err := dst.Save(ctx, key, stored); {
		case errors.Is(err, backend.ErrExists):
		case err != nil:
			return objects, size, fmt.Errorf("init replica: %w", err)
		default:
			objects, size = objects+1, size+int64(len(stored))
		}
	}
	stored, err := r.ConfigBytes(ctx)
	if err != nil {
		return objects, size, fmt.Errorf("init replica: %w", err)
	}
	// The config's integrity rests on the AEAD alone: never copy one that
	// does not open.
	if _, err := r.openObject(stored, configKey); err != nil {
		return objects, size, fmt.Errorf("init replica: config: %w", err)
	}
	if err := dst.Save(ctx, configKey, stored); err != nil {
		if errors.Is(err, backend.ErrExists) {
			// Someone else initialised dst meanwhile: fine only if it is us.
			if replica, cerr := r.CheckReplica(ctx, dst); cerr != nil || !replica {
				return objects, size, fmt.Errorf("init replica: %w", errors.Join(err, cerr))
			}
			return objects, size, nil
		}
		return objects, size, fmt.Errorf("init replica: save config: %w", err)
	}
	return objects + 1, size + int64(len(stored)), nil
}

// OpenConfig authenticates stored config bytes with r's key (a config
// copied from elsewhere must open before it is trusted).
func (r *Repository) OpenConfig(stored []byte) error {
	_, err := r.openObject(stored, configKey)
	return err
}
