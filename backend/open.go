package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs
	_ "gocloud.dev/blob/gcsblob"   // gs:// URLs
	"gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs
)

// Connection counts: local disks want few concurrent fsyncing writers,
// object stores hide latency behind many requests, and memory is CPU-bound.
const (
	localConnections = 2
	cloudConnections = 8
	memConnections   = 4
)

// Open opens the store at location: a local path (relative or absolute) or a
// file:// URL uses strata's own durable file backend; mem://, s3://, gs:// and
// azblob:// go through gocloud.dev/blob. Open never creates anything: a
// missing local directory is an error wrapping ErrNotFound. For URLs, the
// path after the bucket is a key prefix, normalised to end in "/". Each
// mem:// Open is a fresh, empty store.
func Open(ctx context.Context, location string) (Backend, error) {
	return open(ctx, location, false)
}

// Create is Open, except that a local directory is created (with its
// parents) if missing. Buckets are never created.
func Create(ctx context.Context, location string) (Backend, error) {
	return open(ctx, location, true)
}

// OpenMem returns a fresh, empty in-memory store, for tests.
func OpenMem() Backend {
	return newCloud(memblob.OpenBucket(nil), "mem://", memConnections)
}

// IsLocal reports whether location names a local directory (a plain path or
// a file:// URL) rather than an object store.
func IsLocal(location string) bool {
	scheme, ok := urlScheme(location)
	return !ok || scheme == "file"
}

// urlScheme returns the scheme of a "scheme://..." location. Anything
// without "://" after a valid scheme name is a path, so "C:\repo" or
// "./s3:bucket" stay local.
func urlScheme(location string) (string, bool) {
	i := strings.Index(location, "://")
	if i <= 0 {
		return "", false
	}
	scheme := location[:i]
	for j, c := range scheme {
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		other := (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'
		if !letter && (j == 0 || !other) {
			return "", false
		}
	}
	return strings.ToLower(scheme), true
}

func open(ctx context.Context, location string, create bool) (Backend, error) {
	if location == "" {
		return nil, fmt.Errorf("open repository: empty location")
	}
	scheme, isURL := urlScheme(location)
	if !isURL || scheme == "file" {
		dir := location
		if isURL {
			var err error
			if dir, err = fileURLPath(location); err != nil {
				return nil, err
			}
		}
		if create {
			return createLocal(dir)
		}
		return openLocal(dir)
	}
	switch scheme {
	case "mem", "s3", "gs", "azblob":
	default:
		return nil, fmt.Errorf("open %s: unsupported scheme %q (want a path, file://, mem://, s3://, gs:// or azblob://)", redactURL(location), scheme)
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redactURL(location), err)
	}
	prefix, err := urlPrefix(u)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redactURL(location), err)
	}
	bucketURL := *u
	bucketURL.Path, bucketURL.RawPath = "", ""
	if scheme == "s3" {
		bucketURL.RawQuery = s3Defaults(u.Query()).Encode()
	}
	bucket, err := blob.DefaultURLMux().OpenBucketURL(ctx, &bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redactURL(location), err)
	}
	if prefix != "" {
		bucket = blob.PrefixedBucket(bucket, prefix)
	}
	// Check the bucket now: a missing bucket would otherwise look like an
	// empty repository (NoSuchBucket maps to NotFound on every call).
	ok, err := bucket.IsAccessible(ctx)
	if err == nil && !ok {
		err = fmt.Errorf("bucket %q does not exist: %w", u.Host, ErrNotFound)
	}
	if err != nil {
		_ = bucket.Close()
		return nil, fmt.Errorf("open %s: %w", redactURL(location), err)
	}
	if scheme == "mem" {
		return newCloud(bucket, displayURL(u, prefix), memConnections), nil
	}
	// Networks fail transiently; local disks and memory do not.
	return Retry(newCloud(bucket, displayURL(u, prefix), cloudConnections), RetryOptions{}), nil
}

// s3Defaults sets what strata wants of the AWS SDK where the URL does not
// say otherwise. Response checksums are only validated when the operation
// requires them: strata authenticates every byte it reads (each pack's
// header and blobs are sealed, each blob's plaintext hashes to its id), so
// the SDK's check adds nothing, and packs are uploaded in parts, whose
// objects carry a checksum the SDK cannot verify on a whole-object read: it
// logged "WARN Skipped validation of multipart checksum" to stderr for
// every pack a check --read-data or a mirror read. Request checksums keep
// the SDK's default (the server rejects an upload damaged on the way);
// request_checksum_calculation=when_required turns them off for servers
// that refuse them.
func s3Defaults(q url.Values) url.Values {
	if !q.Has("response_checksum_validation") {
		q.Set("response_checksum_validation", "when_required")
	}
	return q
}

// fileURLPath extracts the directory from a file:// URL. Only absolute
// paths are accepted: in "file://repo" the "repo" is a host.
func fileURLPath(location string) (string, error) {
	u, err := url.Parse(location)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", location, err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("open %s: file URL names host %q; use file:///absolute/path", location, u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("open %s: file URLs take no query or fragment", location)
	}
	if u.Path == "" {
		return "", fmt.Errorf("open %s: file URL has no path", location)
	}
	return u.Path, nil
}

// urlPrefix returns the key prefix named by the URL path, ending in "/" so
// that "graph" never matches "graph2/...". gocloud's own prefix= and key=
// parameters are refused: one way to say it is enough.
func urlPrefix(u *url.URL) (string, error) {
	q := u.Query()
	if q.Has("prefix") || q.Has("key") {
		return "", fmt.Errorf("give the key prefix as the URL path, not a prefix= or key= parameter")
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix == "" {
		return "", nil
	}
	if err := validKey(prefix); err != nil {
		return "", fmt.Errorf("invalid key prefix %q: %w", prefix, err)
	}
	return prefix + "/", nil
}

// displayURL renders a bucket URL for messages: no user info, and of the
// query only the region and the endpoint (itself stripped of credentials
// and query), since other parameters may carry secrets.
func displayURL(u *url.URL, prefix string) string {
	if u.Host == "" && prefix == "" {
		return u.Scheme + "://" // "mem://", not "mem:///"
	}
	d := url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/" + prefix}
	q := u.Query()
	keep := url.Values{}
	if r := q.Get("region"); r != "" {
		keep.Set("region", r)
	}
	if e := q.Get("endpoint"); e != "" {
		if eu, err := url.Parse(e); err == nil {
			eu.User, eu.RawQuery, eu.Fragment = nil, "", ""
			keep.Set("endpoint", eu.String())
		}
	}
	d.RawQuery = keep.Encode()
	return d.String()
}

// Redact returns location fit for messages and logs: local paths as they
// are, URLs without credentials or secret query parameters.
func Redact(location string) string {
	if IsLocal(location) {
		return location
	}
	return redactURL(location)
}

// redactURL is displayURL for a location that may not parse.
func redactURL(location string) string {
	u, err := url.Parse(location)
	if err != nil {
		// Cut at the query and drop anything before an "@" in the authority.
		if i := strings.IndexAny(location, "?#"); i >= 0 {
			location = location[:i]
		}
		if s, rest, ok := strings.Cut(location, "://"); ok {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				rest = rest[at+1:]
			}
			location = s + "://" + rest
		}
		return location
	}
	return displayURL(u, strings.TrimPrefix(u.Path, "/"))
}

// The helpers below are shared by the local and cloud backends.

// validKey reports whether key is acceptable to every backend: relative,
// slash-separated, without empty, "." or ".." segments, backslashes or NUL
// bytes, and without a segment that looks like a local temp file. Keys that
// pass cannot escape a local backend's root.
func validKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("key %q contains a backslash or NUL byte", key)
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("key %q is absolute", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("key %q has an empty segment", key)
		case seg == "." || seg == "..":
			return fmt.Errorf("key %q has a %q segment", key, seg)
		case strings.HasPrefix(seg, tempPrefix):
			return fmt.Errorf("key %q has a segment starting with the reserved %q", key, tempPrefix)
		}
	}
	return nil
}

// validPrefix checks a List prefix: "" (everything), a directory such as
// "data/", or a partial name such as "locks/ab".
func validPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	// A trailing slash is fine for a prefix; the rest must read as a key.
	if err := validKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("invalid prefix %q: %w", prefix, err)
	}
	return nil
}

// rangeLength validates offset and length (0 = to the end) against an
// object of size bytes and returns the number of bytes to read.
func rangeLength(size, offset, length int64) (int64, error) {
	switch {
	case offset < 0 || length < 0:
		return 0, fmt.Errorf("invalid range offset %d length %d", offset, length)
	case offset > size:
		return 0, fmt.Errorf("offset %d beyond end of %d-byte object", offset, size)
	case length == 0:
		return size - offset, nil
	case length > size-offset:
		return 0, fmt.Errorf("range %d+%d beyond end of %d-byte object", offset, length, size)
	}
	return length, nil
}

// ctxReader stops a long read when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
