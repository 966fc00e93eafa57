package fs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// readOnlyTree is a small tree with a PDF, its .parts directory and a part.
func readOnlyTree(t *testing.T) (*fakeStore, *contents, *fakeParts) {
	store := &fakeStore{Objs: map[string]object.Version{
		"top.pdf":         version("top.pdf", `"t"`, 3),
		"c/brief.pdf":     version("c/brief.pdf", `"b"`, 5),
		"c/sub/inner.pdf": version("c/sub/inner.pdf", `"i"`, 5),
	}}
	content := newContents(map[string][]byte{`etag:"t"`: []byte("top"), `etag:"b"`: []byte("brief"), `etag:"i"`: []byte("inner")})
	parts := &fakeParts{pages: map[string]int{"top.pdf": 1, "c/brief.pdf": 60, "c/sub/inner.pdf": 2}, dir: t.TempDir()}
	return store, content, parts
}

// mountReadOnlyTree mounts the tree as Mount does, or, with rw, with the
// same options but without "ro": then the kernel no longer refuses writes
// itself and every call reaches the daemon's handlers.
func mountReadOnlyTree(t *testing.T, rw bool) (string, *testenv.LockedBuffer) {
	t.Helper()
	testenv.RequireFUSE(t)
	store, content, parts := readOnlyTree(t)
	logs := &testenv.LockedBuffer{}
	tree := mustNew(t, Options{
		Store:       store,
		OpenReader:  func(v object.Version) Reader { return memReader{content: content, v: v} },
		MetadataTTL: time.Minute,
		FileMode:    0o444,
		DirMode:     0o555,
		Logger:      slog.New(slog.NewTextHandler(logs, nil)),
		Parts:       parts,
		PartPages:   50,
	})
	mp := t.TempDir()
	opts := tree.mountOptions(MountOptions{FsName: "test"})
	if rw {
		opts.MountOptions.Options = slices.DeleteFunc(opts.MountOptions.Options, func(o string) bool { return o == "ro" })
	}
	server, err := gofs.Mount(mp, &dirNode{fsys: tree}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			t.Error(err)
		}
		server.Wait()
	})
	var st unix.Statfs_t
	if err := unix.Statfs(mp, &st); err != nil {
		t.Fatal(err)
	}
	if ro := st.Flags&unix.ST_RDONLY != 0; ro == rw {
		t.Fatalf("mount flags %#x: read-only is %v, want %v", st.Flags, ro, !rw)
	}
	return mp, logs
}

// mutation is one call that would change the tree if it succeeded.
type mutation struct {
	name string
	do   func() error
}

func openClose(path string, flags int) error {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// dirMutations are the calls that change the directory dir, whose entries
// include the file fileChild and the directory dirChild ("" if none).
// other is an existing file elsewhere in the mount (for link and rename).
func dirMutations(dir, fileChild, dirChild, other string) []mutation {
	p := func(name string) string { return filepath.Join(dir, name) }
	ms := []mutation{
		{"open O_CREAT|O_WRONLY new", func() error { return openClose(p("new.pdf"), unix.O_CREAT|unix.O_WRONLY) }},
		{"open O_CREAT|O_EXCL|O_RDONLY new", func() error { return openClose(p("new.pdf"), unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY) }},
		{"open O_TMPFILE", func() error { return openClose(dir, unix.O_TMPFILE|unix.O_RDWR) }},
		{"creat", func() error {
			fd, err := unix.Creat(p("new.pdf"), 0o644)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		{"mkdir", func() error { return unix.Mkdir(p("newdir"), 0o755) }},
		{"mknod fifo", func() error { return unix.Mknod(p("fifo"), unix.S_IFIFO|0o644, 0) }},
		{"mknod regular", func() error { return unix.Mknod(p("node"), unix.S_IFREG|0o644, 0) }},
		{"symlink", func() error { return unix.Symlink("target", p("link")) }},
		{"link into", func() error { return unix.Link(other, p("hard.pdf")) }},
		{"chmod", func() error { return unix.Chmod(dir, 0o777) }},
		{"chown", func() error { return unix.Chown(dir, 12345, 12345) }},
		{"utimes", func() error {
			return unix.UtimesNano(dir, []unix.Timespec{unix.NsecToTimespec(1e9), unix.NsecToTimespec(1e9)})
		}},
		{"utimes now (touch)", func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, dir, nil, 0) }},
		{"setxattr user", func() error { return unix.Setxattr(dir, "user.x", []byte("1"), 0) }},
		{"setxattr trusted", func() error { return unix.Setxattr(dir, "trusted.x", []byte("1"), 0) }},
		{"removexattr", func() error { return unix.Removexattr(dir, "user.x") }},
	}
	if fileChild != "" {
		ms = append(ms,
			mutation{"unlink file", func() error { return unix.Unlink(p(fileChild)) }},
			mutation{"rename file within dir", func() error { return unix.Rename(p(fileChild), p("renamed")) }},
			mutation{"rename file over other", func() error { return unix.Rename(p(fileChild), other) }},
			mutation{"rename other into dir", func() error { return unix.Rename(other, p("moved.pdf")) }},
			mutation{"renameat2 NOREPLACE", func() error {
				return unix.Renameat2(unix.AT_FDCWD, p(fileChild), unix.AT_FDCWD, p("renamed"), unix.RENAME_NOREPLACE)
			}},
			mutation{"renameat2 EXCHANGE", func() error {
				return unix.Renameat2(unix.AT_FDCWD, p(fileChild), unix.AT_FDCWD, other, unix.RENAME_EXCHANGE)
			}},
		)
	}
	if dirChild != "" {
		ms = append(ms,
			mutation{"rmdir", func() error { return unix.Rmdir(p(dirChild)) }},
			mutation{"rename dir within dir", func() error { return unix.Rename(p(dirChild), p("renamed-dir")) }},
		)
	}
	return ms
}

// fileMutations are the calls that change the file path.
func fileMutations(path string) []mutation {
	return []mutation{
		{"open O_WRONLY", func() error { return openClose(path, unix.O_WRONLY) }},
		{"open O_RDWR", func() error { return openClose(path, unix.O_RDWR) }},
		{"open O_RDONLY|O_TRUNC", func() error { return openClose(path, unix.O_RDONLY|unix.O_TRUNC) }},
		{"open O_WRONLY|O_APPEND", func() error { return openClose(path, unix.O_WRONLY|unix.O_APPEND) }},
		{"open O_WRONLY|O_CREAT existing", func() error { return openClose(path, unix.O_WRONLY|unix.O_CREAT) }},
		{"creat existing", func() error {
			fd, err := unix.Creat(path, 0o644)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		{"truncate", func() error { return unix.Truncate(path, 0) }},
		{"truncate longer", func() error { return unix.Truncate(path, 1<<20) }},
		{"chmod", func() error { return unix.Chmod(path, 0o666) }},
		{"chown", func() error { return unix.Chown(path, 12345, 12345) }},
		{"utimes", func() error {
			return unix.UtimesNano(path, []unix.Timespec{unix.NsecToTimespec(1e9), unix.NsecToTimespec(1e9)})
		}},
		{"utimes now (touch)", func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, path, nil, 0) }},
		{"setxattr user.x", func() error { return unix.Setxattr(path, "user.x", []byte("1"), 0) }},
		{"setxattr " + pagesXattr, func() error { return unix.Setxattr(path, pagesXattr, []byte("1"), 0) }},
		{"setxattr security", func() error { return unix.Setxattr(path, "security.x", []byte("1"), 0) }},
		{"removexattr " + pagesXattr, func() error { return unix.Removexattr(path, pagesXattr) }},
	}
}

// TestEveryMutationIsEROFS runs every call that could change the tree, on
// every kind of node (root, directory, file, .parts, a .parts directory, a
// PDF's parts directory, a part), on the mount as Mount makes it and on the
// same tree mounted read-write, where only the daemon stands in the way.
// Each must fail with EROFS and change nothing.
func TestEveryMutationIsEROFS(t *testing.T) {
	for _, rw := range []bool{false, true} {
		t.Run(fmt.Sprintf("rw=%v", rw), func(t *testing.T) {
			mp, logs := mountReadOnlyTree(t, rw)
			path := func(rel string) string { return filepath.Join(mp, rel) }
			other := path("top.pdf")
			part := path(".parts/c/brief.pdf/pages-0001-0050.pdf")
			targets := map[string][]mutation{
				"root":                    dirMutations(mp, "top.pdf", "c", path("c/brief.pdf")),
				"c/":                      dirMutations(path("c"), "brief.pdf", "sub", other),
				"c/brief.pdf":             fileMutations(path("c/brief.pdf")),
				".parts/":                 dirMutations(path(".parts"), "", "c", other),
				".parts/c/":               dirMutations(path(".parts/c"), "", "sub", other),
				".parts/c/brief.pdf/":     dirMutations(path(".parts/c/brief.pdf"), "pages-0001-0050.pdf", "", other),
				".parts/…/pages-1-50.pdf": fileMutations(part),
			}
			calls := 0
			for target, ms := range targets {
				for _, m := range ms {
					calls++
					err := m.do()
					if rw && m.name == "open O_TMPFILE" && errors.Is(err, unix.EOPNOTSUPP) {
						// go-fuse does not implement FUSE_TMPFILE: the
						// kernel never asks the daemon to make the file.
						continue
					}
					if !errors.Is(err, unix.EROFS) {
						t.Errorf("%s: %s: %v, want EROFS", target, m.name, err)
					}
				}
			}
			t.Logf("%d mutating calls made", calls)
			// fallocate needs a descriptor open for writing, which no open
			// gives: on the read-only one it is EBADF.
			f, err := os.Open(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 4096); !errors.Is(err, unix.EBADF) {
				t.Errorf("fallocate on a read-only descriptor: %v, want EBADF", err)
			}
			if _, err := f.Write([]byte("x")); !errors.Is(err, unix.EBADF) {
				t.Errorf("write on a read-only descriptor: %v, want EBADF", err)
			}
			f.Close()

			// Nothing changed: the same names, the same bytes, the xattr.
			if got := strings.Join(names(t, mp), ","); got != "c,top.pdf" {
				t.Errorf("root lists %s", got)
			}
			if got := strings.Join(names(t, path("c")), ","); got != "brief.pdf,sub" {
				t.Errorf("c/ lists %s", got)
			}
			if got := strings.Join(names(t, path(".parts/c/brief.pdf")), ","); got != "pages-0001-0050.pdf,pages-0051-0060.pdf" {
				t.Errorf(".parts/c/brief.pdf lists %s", got)
			}
			for rel, want := range map[string]string{"top.pdf": "top", "c/brief.pdf": "brief", ".parts/c/brief.pdf/pages-0001-0050.pdf": "c/brief.pdf:1-50"} {
				if b, err := os.ReadFile(path(rel)); err != nil || string(b) != want {
					t.Errorf("%s: %q, %v; want %q", rel, b, err, want)
				}
			}
			for rel, mode := range map[string]os.FileMode{"c/brief.pdf": 0o444, "c": os.ModeDir | 0o555, ".parts/c/brief.pdf": os.ModeDir | 0o555} {
				if st, err := os.Stat(path(rel)); err != nil || st.Mode() != mode {
					t.Errorf("%s: mode %v, %v; want %v", rel, st.Mode(), err, mode)
				}
			}
			buf := make([]byte, 16)
			if n, err := unix.Getxattr(path("c/brief.pdf"), pagesXattr, buf); err != nil || string(buf[:n]) != "60" {
				t.Errorf("xattr after the refused calls: %q, %v", buf[:n], err)
			}
			if strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("refused writes logged errors:\n%s", logs.String())
			}
		})
	}
}

// TestMoveIntoTheMountFails: rename(2) from another file system is EXDEV,
// and mv then falls back to copying, which the mount refuses: the source
// stays, and nothing appears in the mount.
func TestMoveIntoTheMountFails(t *testing.T) {
	mp, _ := mountReadOnlyTree(t, false)
	src := filepath.Join(t.TempDir(), "outside.pdf")
	if err := os.WriteFile(src, []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(mp, "c", "outside.pdf")
	if err := unix.Rename(src, dst); !errors.Is(err, unix.EXDEV) {
		t.Fatalf("rename into the mount: %v, want EXDEV", err)
	}
	out, err := testenv.Command(testenv.Tool(t, "mv"), src, dst).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Read-only file system") {
		t.Fatalf("mv into the mount: %v: %s", err, out)
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("the source is gone: %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the target exists: %v", err)
	}
	// And out of it: the copy is made, the unlink in the mount refused.
	out, err = testenv.Command(testenv.Tool(t, "mv"), filepath.Join(mp, "top.pdf"), filepath.Join(t.TempDir(), "top.pdf")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Read-only file system") {
		t.Fatalf("mv out of the mount: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(mp, "top.pdf")); err != nil {
		t.Fatal(err)
	}

}
