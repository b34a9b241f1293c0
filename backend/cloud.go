package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// cloudBackend stores objects in a gocloud.dev/blob bucket (S3, GCS, Azure,
// memory). The bucket is already prefixed: keys here are repository keys.
type cloudBackend struct {
	bucket      *blob.Bucket
	location    string
	connections int
	// listPageSize is the number of keys fetched per List round trip; tests
	// lower it to exercise pagination against servers that never cap pages.
	listPageSize int
	// headFirst is the body size from which Save checks for the key before
	// uploading (0: never). See Save.
	headFirst int
}

var (
	_ Backend    = (*cloudBackend)(nil)
	_ Properties = (*cloudBackend)(nil)
)

// defaultListPageSize matches S3's own cap, so real and test servers page
// alike.
const defaultListPageSize = 1000

// defaultHeadFirst: below this size a refused upload costs little, above it
// a HEAD is cheap next to the upload it may save.
const defaultHeadFirst = 1 << 20

func newCloud(bucket *blob.Bucket, location string, connections int) *cloudBackend {
	return &cloudBackend{
		bucket:       bucket,
		location:     location,
		connections:  connections,
		listPageSize: defaultListPageSize,
		headFirst:    defaultHeadFirst,
	}
}

// Save writes data with IfNotExist, which the store enforces atomically
// (S3: If-None-Match: *).
func (b *cloudBackend) Save(ctx context.Context, key string, data []byte) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	// A large body whose key exists is refused only after the upload, and
	// some servers (versitygw) refuse a single-part one by resetting the
	// connection, which the SDK retries with backoff for seconds. Asking
	// first skips that for the common duplicate (a retried pack save). The
	// conditional write below still decides races.
	if b.headFirst > 0 && len(data) >= b.headFirst {
		if _, err := b.bucket.Attributes(ctx, key); err == nil {
			return fmt.Errorf("save %s: %w", key, ErrExists)
		}
	}
	// Setting the content type stops gocloud from sniffing the data.
	opts := &blob.WriterOptions{IfNotExist: true, ContentType: "application/octet-stream"}
	err := b.bucket.WriteAll(ctx, key, data, opts)
	if err == nil {
		return nil
	}
	switch gcerrors.Code(err) {
	case gcerrors.FailedPrecondition, gcerrors.AlreadyExists:
		return fmt.Errorf("save %s: %w", key, ErrExists)
	case gcerrors.Unknown:
		// A losing conditional write of a large body sometimes comes back as
		// a connection reset rather than 412, and a winning one can lose its
		// response. If the key now holds an object of our size, it was
		// created (by us or a racer); callers storing content-addressed
		// objects treat that as success.
		if ctx.Err() == nil {
			if attrs, serr := b.bucket.Attributes(ctx, key); serr == nil && attrs.Size == int64(len(data)) {
				return fmt.Errorf("save %s: %w (after: %v)", key, ErrExists, err)
			}
		}
	}
	return fmt.Errorf("save %s: %w", key, err)
}

// Load streams a byte range. The whole-object size the store reports with the
// range tells us whether the range fit: S3 silently truncates a range that
// runs past the end.
func (b *cloudBackend) Load(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	if offset < 0 || length < 0 {
		return fmt.Errorf("load %s: invalid range offset %d length %d", key, offset, length)
	}
	// memblob ignores the context; check it here so every store behaves
	// alike.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	gl := length
	if length == 0 {
		gl = -1 // gocloud's "to the end"
	}
	r, err := b.bucket.NewRangeReader(ctx, key, offset, gl, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return fmt.Errorf("load %s: %w", key, ErrNotFound)
		}
		return b.loadFailed(ctx, key, offset, length, fn, err)
	}
	defer func() { _ = r.Close() }()
	if _, err := rangeLength(r.Size(), offset, length); err != nil {
		return fmt.Errorf("load %s: %w", key, err)
	}
	return fn(&ctxReader{ctx: ctx, r: r})
}

// loadFailed explains a failed range read. S3 answers 416 (an Unknown error
// to gocloud) for a range starting at or past the end, including the
// legitimate empty read at offset == size.
func (b *cloudBackend) loadFailed(ctx context.Context, key string, offset, length int64, fn func(io.Reader) error, err error) error {
	if ctx.Err() != nil || gcerrors.Code(err) != gcerrors.Unknown {
		return fmt.Errorf("load %s: %w", key, err)
	}
	attrs, serr := b.bucket.Attributes(ctx, key)
	if serr != nil {
		if gcerrors.Code(serr) == gcerrors.NotFound {
			return fmt.Errorf("load %s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("load %s: %w", key, err)
	}
	n, rerr := rangeLength(attrs.Size, offset, length)
	if rerr != nil {
		return fmt.Errorf("load %s: %w", key, rerr)
	}
	if n == 0 {
		return fn(bytes.NewReader(nil))
	}
	return fmt.Errorf("load %s: %w", key, err)
}

// Stat returns the store's size and modification time.
func (b *cloudBackend) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := validKey(key); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	attrs, err := b.bucket.Attributes(ctx, key)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", key, mapCloudErr(err))
	}
	return ObjectInfo{Key: key, Size: attrs.Size, ModTime: attrs.ModTime}, nil
}

// List pages through a flat (delimiter-less) listing of prefix.
func (b *cloudBackend) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validPrefix(prefix); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	opts := &blob.ListOptions{Prefix: prefix}
	token := blob.FirstPageToken
	for len(token) > 0 {
		objs, next, err := b.bucket.ListPage(ctx, token, b.listPageSize, opts)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("list %s: %w", prefix, mapCloudErr(err))
		}
		for _, o := range objs {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list %s: %w", prefix, err)
			}
			if o.IsDir {
				continue
			}
			if err := fn(ObjectInfo{Key: o.Key, Size: o.Size, ModTime: o.ModTime}); err != nil {
				return err
			}
		}
		token = next
	}
	return nil
}

// Remove deletes key. gocloud checks existence first on S3, whose
// DeleteObject succeeds for missing keys.
func (b *cloudBackend) Remove(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", key, err)
	}
	if err := b.bucket.Delete(ctx, key); err != nil {
		return fmt.Errorf("remove %s: %w", key, mapCloudErr(err))
	}
	return nil
}

// Close closes the bucket.
func (b *cloudBackend) Close() error {
	if err := b.bucket.Close(); err != nil {
		return fmt.Errorf("close %s: %w", b.location, err)
	}
	return nil
}

// Connections is the number of parallel transfers that keep the store busy.
func (b *cloudBackend) Connections() int { return b.connections }

// Location is the bucket URL without credentials or secret parameters.
func (b *cloudBackend) Location() string { return b.location }

// mapCloudErr adds ErrNotFound to gocloud's NotFound, keeping err in the
// chain for details. ResourceExhausted is deliberately not ErrNoSpace: object
// stores use it for throttling, which retrying does help.
func mapCloudErr(err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
