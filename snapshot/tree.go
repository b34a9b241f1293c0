package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
)

// Node types.
const (
	NodeFile    = "file"
	NodeDir     = "dir"
	NodeSymlink = "symlink"
)

// Node is one entry of a tree.
type Node struct {
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Mode       Mode       `json:"mode"` // POSIX permission bits with setuid 04000, setgid 02000, sticky 01000
	ModTime    time.Time  `json:"mtime"`
	ChangeTime time.Time  `json:"ctime,omitzero"`
	UID        uint32     `json:"uid"`
	GID        uint32     `json:"gid"`
	Inode      uint64     `json:"inode,omitempty"`
	DeviceID   uint64     `json:"device_id,omitempty"`
	Size       uint64     `json:"size,omitempty"`
	LinkTarget string     `json:"linktarget,omitempty"`
	Content    []chunk.ID `json:"content,omitempty"`
	Subtree    *chunk.ID  `json:"subtree,omitempty"`

	// total is the bytes of the files at and below this node, computed
	// while backing up (a tier records it); it is not stored.
	total uint64
}

// totalSize returns the bytes of the files at and below n.
func (n *Node) totalSize() uint64 {
	if n.Type == NodeFile {
		return n.Size
	}
	return n.total
}

// Mode is a POSIX mode (permissions and the setuid, setgid and sticky
// bits), independent of Go's fs.FileMode bit layout.
type Mode uint32

// ModeFrom converts Go's permission and special bits to POSIX.
func ModeFrom(m fs.FileMode) Mode {
	out := Mode(m.Perm())
	if m&fs.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

// FileMode converts to Go's representation.
func (m Mode) FileMode() fs.FileMode {
	out := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// nodeJSON is Node without its JSON methods.
type nodeJSON Node

// nodeWire carries names that are not valid UTF-8 (legal on Linux) as raw
// bytes beside a display form, since a JSON string would replace them and
// the file would come back under another name.
type nodeWire struct {
	*nodeJSON
	NameBytes       []byte `json:"name_bytes,omitempty"`
	LinkTargetBytes []byte `json:"linktarget_bytes,omitempty"`
}

// MarshalJSON writes names and link targets byte-exact.
func (n Node) MarshalJSON() ([]byte, error) {
	c := nodeJSON(n)
	w := nodeWire{nodeJSON: &c}
	if !utf8.ValidString(n.Name) {
		w.NameBytes, c.Name = []byte(n.Name), strings.ToValidUTF8(n.Name, "\uFFFD")
	}
	if !utf8.ValidString(n.LinkTarget) {
		w.LinkTargetBytes, c.LinkTarget = []byte(n.LinkTarget), strings.ToValidUTF8(n.LinkTarget, "\uFFFD")
	}
	return json.Marshal(w)
}

// UnmarshalJSON restores raw names.
func (n *Node) UnmarshalJSON(b []byte) error {
	w := nodeWire{nodeJSON: (*nodeJSON)(n)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.NameBytes != nil {
		n.Name = string(w.NameBytes)
	}
	if w.LinkTargetBytes != nil {
		n.LinkTarget = string(w.LinkTargetBytes)
	}
	return nil
}

// Tree is a directory listing, stored as a tree blob. Nodes are sorted by
// name so equal directories give equal blobs.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// Find returns the node called name, or nil.
func (t *Tree) Find(name string) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return t.Nodes[i]
	}
	return nil
}

func (t *Tree) sort() {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
}

// blobSaver is what tree saving needs from a repository writer.
type blobSaver interface {
	SaveBlob(ctx context.Context, t index.BlobType, id chunk.ID, data []byte) (bool, error)
}

// SaveTree stores t as a tree blob and returns its id.
func SaveTree(ctx context.Context, r *repo.Repository, w blobSaver, t *Tree) (chunk.ID, error) {
	t.sort()
	if t.Nodes == nil {
		t.Nodes = []*Node{}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return chunk.ID{}, fmt.Errorf("encode tree: %w", err)
	}
	b = append(b, '\n')
	id := r.BlobID(b)
	if _, err := w.SaveBlob(ctx, index.TreeBlob, id, b); err != nil {
		return chunk.ID{}, fmt.Errorf("save tree: %w", err)
	}
	return id, nil
}

// LoadTree loads tree blob id.
func LoadTree(ctx context.Context, r *repo.Repository, id chunk.ID) (*Tree, error) {
	b, err := r.LoadBlob(ctx, id, nil)
	if err != nil {
		return nil, fmt.Errorf("load tree %s: %w", id.Short(), err)
	}
	t, err := DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// DecodeTree parses a tree blob's plaintext. Names are checked before
// anything joins them to a restore target (no "..", no "/", no NUL), and
// must be sorted and unique for Find.
func DecodeTree(b []byte) (*Tree, error) {
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decode tree: %w: %w", err, repo.ErrCorrupt)
	}
	for i, n := range t.Nodes {
		if n == nil || n.Name == "" || n.Name == "." || n.Name == ".." || containsSlash(n.Name) {
			return nil, fmt.Errorf("decode tree: bad node name: %w", repo.ErrCorrupt)
		}
		if i > 0 && t.Nodes[i-1].Name >= n.Name {
			return nil, fmt.Errorf("decode tree: names not sorted and unique at %q: %w", n.Name, repo.ErrCorrupt)
		}
		switch n.Type {
		case NodeFile, NodeDir, NodeSymlink:
		default:
			return nil, fmt.Errorf("decode tree: node %q: unknown type %q: %w", n.Name, n.Type, repo.ErrCorrupt)
		}
	}
	return &t, nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == 0 {
			return true
		}
	}
	return false
}
