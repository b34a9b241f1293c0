//go:build unix

package snapshot

import (
	"io/fs"
	"syscall"
	"time"
)

// fillStat copies the unix metadata restic also keeps: owner, inode,
// device and ctime (which together detect a changed file without reading it).
func fillStat(n *Node, fi fs.FileInfo) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	n.UID, n.GID = st.Uid, st.Gid
	n.Inode, n.DeviceID = st.Ino, uint64(st.Dev)
	n.ChangeTime = time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec))
}
