package fs

import (
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"s3docs/internal/object"
)

// A file opened by a thread in the idle I/O class (ionice -c 3, s3docs
// warm) is read through OpenBackgroundReader; any other through
// OpenReader.
func TestIdleIOClassOpensInTheBackground(t *testing.T) {
	v := version("a.pdf", `"a"`, 5)
	store := &fakeStore{objs: map[string]object.Version{"a.pdf": v}}
	content := newContents(map[string][]byte{v.Identity(): []byte("hello")})
	var foreground, background atomic.Int64
	mp, _ := mountFake(t, store, content, time.Minute, func(o *Options) {
		o.OpenReader = func(v object.Version) Reader {
			foreground.Add(1)
			return memReader{content: content, v: v}
		}
		o.OpenBackgroundReader = func(v object.Version) Reader {
			background.Add(1)
			return memReader{content: content, v: v}
		}
	})
	path := filepath.Join(mp, "a.pdf")
	if b, err := os.ReadFile(path); err != nil || string(b) != "hello" {
		t.Fatalf("read: %q, %v", b, err)
	}
	if foreground.Load() != 1 || background.Load() != 0 {
		t.Fatalf("a plain open: %d foreground, %d background readers", foreground.Load(), background.Load())
	}
	done := make(chan error)
	go func() {
		// The thread ends with the goroutine, idle class and all.
		runtime.LockOSThread()
		if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, ioprioClassIdle<<ioprioClassShift); errno != 0 {
			done <- errno
			return
		}
		b, err := os.ReadFile(path)
		if err == nil && string(b) != "hello" {
			t.Errorf("read %q", b)
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if foreground.Load() != 1 || background.Load() != 1 {
		t.Fatalf("an open in the idle I/O class: %d foreground, %d background readers", foreground.Load(), background.Load())
	}
}

// While the store throttles, a lookup's listing waits for its HEAD
// instead of going beside it 20 ms later: a HEAD that finds the file
// leaves it unsent.
func TestThrottledLookupsSendOneRequestAtATime(t *testing.T) {
	for _, throttled := range []bool{false, true} {
		v := version("a.pdf", `"a"`, 5)
		store := &fakeStore{objs: map[string]object.Version{"a.pdf": v}, headDelay: 200 * time.Millisecond}
		mp, _ := mountFake(t, store, newContents(map[string][]byte{}), time.Minute, func(o *Options) {
			o.Throttled = func() bool { return throttled }
		})
		if _, err := os.Stat(filepath.Join(mp, "a.pdf")); err != nil {
			t.Fatal(err)
		}
		want := int64(1) // the listing beside a slow HEAD
		if throttled {
			want = 0
		}
		if n := store.probes.Load(); n != want {
			t.Errorf("throttled %v: %d listings for a lookup whose HEAD found the file, want %d", throttled, n, want)
		}
	}
}
