package backend

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestValidKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"config", true},
		{"data/ab/abcdef", true},
		{"oplog/1/00000000000000000001-00000000000000000002-ab", true},
		{"locks/.hidden", true},
		{"", false},
		{"/abs", false},
		{"..", false},
		{"../x", false},
		{"a/../b", false},
		{"a/./b", false},
		{".", false},
		{"a//b", false},
		{"a/", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"data/.tmp-123", false},
		{".tmp-x/y", false},
	}
	for _, tt := range tests {
		if err := validKey(tt.key); (err == nil) != tt.ok {
			t.Errorf("validKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

func TestRangeLength(t *testing.T) {
	tests := []struct {
		size, offset, length, want int64
		ok                         bool
	}{
		{10, 0, 0, 10, true},
		{10, 3, 0, 7, true},
		{10, 3, 7, 7, true},
		{10, 10, 0, 0, true},
		{0, 0, 0, 0, true},
		{10, 11, 0, 0, false},
		{10, 3, 8, 0, false},
		{10, -1, 0, 0, false},
		{10, 0, -1, 0, false},
	}
	for _, tt := range tests {
		got, err := rangeLength(tt.size, tt.offset, tt.length)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("rangeLength(%d, %d, %d) = %d, %v; want %d ok=%v", tt.size, tt.offset, tt.length, got, err, tt.want, tt.ok)
		}
	}
}

func TestMapNoSpace(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := mapNoSpace(&os.PathError{Op: "write", Path: "/x", Err: errno})
		if !errors.Is(err, ErrNoSpace) || !errors.Is(err, errno) {
			t.Errorf("mapNoSpace(%v) = %v: want ErrNoSpace and the errno in the chain", errno, err)
		}
	}
	if err := mapNoSpace(fmt.Errorf("x: %w", syscall.EIO)); errors.Is(err, ErrNoSpace) {
		t.Errorf("EIO mapped to ErrNoSpace")
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3://b/p?region=r&endpoint=http://u:pw@h:1/x?sig=1&sse=secret", "s3://b/p?endpoint=http%3A%2F%2Fh%3A1%2Fx&region=r"},
		{"s3://u:pw@b/p", "s3://b/p"},
		{"s3://b/%zz?token=secret", "s3://b/%zz"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
