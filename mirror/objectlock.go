package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/strata-backup/strata/backend"
)

// Object Lock retention modes (S3's names, lower case on the command line).
const (
	// LockCompliance: nobody, the bucket owner included, can delete or
	// shorten the retention before it ends.
	LockCompliance = "compliance"
	// LockGovernance: users with s3:BypassGovernanceRetention can.
	LockGovernance = "governance"
)

// ObjectLock asks for S3 Object Lock retention on every object a mirror
// writes: each stays undeletable for Days after it was written.
type ObjectLock struct {
	Days int
	Mode string // LockCompliance (default) or LockGovernance
}

// lockedBackend writes through its own handle on the bucket, so each Save
// can carry retention headers (the backend.Backend contract has no
// per-write options); every other call goes to the wrapped backend.
type lockedBackend struct {
	backend.Backend
	bucket *blob.Bucket
	mode   tmtypes.ObjectLockMode
	days   int
	now    func() time.Time
}

var (
	_ backend.Backend    = (*lockedBackend)(nil)
	_ backend.Properties = (*lockedBackend)(nil)
)

// WithObjectLock wraps dst, opened from the s3:// URL location, so that
// every object saved carries Object Lock retention of lock.Days from the
// moment it is written. It refuses other stores, and a bucket without
// Object Lock enabled (S3 rejects retention there; the bucket must be
// created with Object Lock, or have it enabled, first). Close closes the
// extra handle, not dst.
func WithObjectLock(ctx context.Context, location string, dst backend.Backend, lock ObjectLock) (backend.Backend, error) {
	if lock.Days <= 0 {
		return nil, fmt.Errorf("object lock: retention of %d days: want at least 1", lock.Days)
	}
	var mode tmtypes.ObjectLockMode = tmtypes.ObjectLockModeCompliance
	switch strings.ToLower(lock.Mode) {
	case "", LockCompliance:
	case LockGovernance:
		mode = tmtypes.ObjectLockModeGovernance
	default:
		return nil, fmt.Errorf("object lock: unknown mode %q (want compliance or governance)", lock.Mode)
	}
	u, err := url.Parse(location)
	if err != nil || !strings.EqualFold(u.Scheme, "s3") {
		return nil, fmt.Errorf("object lock: %s is not an s3:// URL (Object Lock is an S3 feature)", backend.Redact(location))
	}
	// The same bucket and prefix backend.Open derives from the URL.
	prefix := strings.Trim(u.Path, "/")
	bucketURL := *u
	bucketURL.Path, bucketURL.RawPath = "", ""
	bucket, err := blob.OpenBucket(ctx, bucketURL.String())
	if err != nil {
		return nil, fmt.Errorf("object lock: open %s: %w", backend.Redact(location), err)
	}
	var client *s3.Client
	if !bucket.As(&client) {
		_ = bucket.Close()
		return nil, fmt.Errorf("object lock: %s is not served by the S3 driver", backend.Redact(location))
	}
	cfg, err := client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(u.Host)})
	if err != nil || cfg.ObjectLockConfiguration == nil || cfg.ObjectLockConfiguration.ObjectLockEnabled != s3types.ObjectLockEnabledEnabled {
		_ = bucket.Close()
		why := "it is not enabled"
		if err != nil {
			why = err.Error()
		}
		return nil, fmt.Errorf("object lock: bucket %q has no Object Lock configuration (%s); create the bucket with Object Lock enabled", u.Host, why)
	}
	if prefix != "" {
		bucket = blob.PrefixedBucket(bucket, prefix+"/")
	}
	return &lockedBackend{Backend: dst, bucket: bucket, mode: mode, days: lock.Days, now: time.Now}, nil
}

// Save creates key (If-None-Match: *) with retention until now + days. The
// request carries a CRC32 checksum: S3 demands one on writes with Object
// Lock parameters.
func (b *lockedBackend) Save(ctx context.Context, key string, data []byte) error {
	until := b.now().Add(time.Duration(b.days) * 24 * time.Hour)
	opts := &blob.WriterOptions{
		IfNotExist:  true,
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			var in *transfermanager.UploadObjectInput
			if !as(&in) {
				return errors.New("the S3 driver does not expose its upload input")
			}
			in.ObjectLockMode = b.mode
			in.ObjectLockRetainUntilDate = &until
			in.ChecksumAlgorithm = tmtypes.ChecksumAlgorithmCrc32
			return nil
		},
	}
	err := b.bucket.WriteAll(ctx, key, data, opts)
	if err == nil {
		return nil
	}
	switch gcerrors.Code(err) {
	case gcerrors.FailedPrecondition, gcerrors.AlreadyExists:
		return fmt.Errorf("save %s: %w", key, backend.ErrExists)
	case gcerrors.Unknown:
		// As backend's cloud Save: a losing conditional write can come back
		// as a reset connection. The same size under the name means it
		// exists (content-addressed: the same bytes).
		if ctx.Err() == nil {
			if fi, serr := b.Backend.Stat(ctx, key); serr == nil && fi.Size == int64(len(data)) {
				return fmt.Errorf("save %s: %w (after: %v)", key, backend.ErrExists, err)
			}
		}
	}
	return fmt.Errorf("save %s with object lock: %w", key, err)
}

// Close closes the extra bucket handle; the wrapped backend is the caller's.
func (b *lockedBackend) Close() error { return b.bucket.Close() }

func (b *lockedBackend) Connections() int { return backend.Connections(b.Backend, 0) }
func (b *lockedBackend) Location() string { return backend.Location(b.Backend) }
