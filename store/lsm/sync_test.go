package lsm

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleyim/parley/conversation"
	"github.com/parleyim/parley/store"
)

// TestWriteWaitsForItsSyncOutsideTheLock holds the write-ahead log's syncs
// and checks that a write waiting for its sync holds up neither readers nor
// another write: both apply and are visible at once, and neither returns
// before the syncs resume.
func TestWriteWaitsForItsSyncOutsideTheLock(t *testing.T) {
	fs := &holdFS{FS: vfs.Default}
	l := openTemp(t, Options{fs: fs})
	ctx := t.Context()
	a, b := conversation.DirectID("u1", "u2"), conversation.DirectID("u3", "u4")
	msg := func(conv, from, to string) store.NewMessage {
		return store.NewMessage{Conversation: conv, Kind: conversation.Direct, ServerID: "s" + from, ClientID: "c" + from,
			Sender: from, Recipient: to, ContentType: "text", Content: []byte(`"hi"`), Time: time.Now()}
	}
	if _, err := l.AppendMessages(ctx, []store.NewMessage{msg(a, "u1", "u2"), msg(b, "u3", "u4")}); err != nil {
		t.Fatal(err)
	}
	readSeq := func(user, conv string) int64 {
		m, err := l.Member(ctx, user, conv)
		if err != nil {
			t.Error(err)
		}
		return m.ReadSeq
	}

	t.Cleanup(fs.hold()) // before the log's Close, which syncs
	done := make(chan error, 2)
	go func() { _, _, err := l.MarkRead(ctx, "u2", a, 1); done <- err }()
	waitUntil(t, "the first read is visible", func() bool { return readSeq("u2", a) == 1 })
	go func() { _, _, err := l.MarkRead(ctx, "u4", b, 1); done <- err }()
	waitUntil(t, "the second read is visible while the first waits for its sync", func() bool { return readSeq("u4", b) == 1 })
	select {
	case err := <-done:
		t.Fatalf("a write returned before its sync (err %v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	fs.release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// holdFS is a file system whose write-ahead-log syncs wait while it holds
// them.
type holdFS struct {
	vfs.FS
	mu    sync.Mutex
	until chan struct{} // closed to release; nil while not holding
}

// hold makes syncs wait until release, which it returns.
func (fs *holdFS) hold() (release func()) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.until = make(chan struct{})
	return fs.release
}

func (fs *holdFS) release() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.until != nil {
		close(fs.until)
		fs.until = nil
	}
}

func (fs *holdFS) wait() {
	fs.mu.Lock()
	until := fs.until
	fs.mu.Unlock()
	if until != nil {
		<-until
	}
}

func (fs *holdFS) wal(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &holdFile{File: f, fs: fs}, nil
}

func (fs *holdFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wal(name, f, err)
}

func (fs *holdFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wal(newname, f, err)
}

type holdFile struct {
	vfs.File
	fs *holdFS
}

func (f *holdFile) Sync() error     { f.fs.wait(); return f.File.Sync() }
func (f *holdFile) SyncData() error { f.fs.wait(); return f.File.SyncData() }
func (f *holdFile) SyncTo(n int64) (bool, error) {
	f.fs.wait()
	return f.File.SyncTo(n)
}
