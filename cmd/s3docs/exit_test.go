package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"s3docs/chunkcache"
	"s3docs/internal/object"
	"s3docs/internal/testenv"
)

// noFetcher is a chunk cache's store that is never asked.
type noFetcher struct{}

func (noFetcher) GetRange(context.Context, object.Version, int64, int64) (io.ReadCloser, error) {
	return nil, errors.New("not used")
}

// The mount command's errors become exit codes in one place: bad input and
// refused setups 2, failures 1, each in one line. A cache directory that
// s3docs refuses for what it is is the operator's mistake (2); one that
// cannot be made because the file system fails is not (1; it was 2).
// TestBadInput checks both on the real command.
func TestExitCodes(t *testing.T) {
	testenv.RequireRoot(t)
	refusedDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(refusedDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, refused := chunkcache.Open(chunkcache.Options{MaxConcurrentGets: 16, ReadTimeout: time.Minute, Dir: refusedDir, MaxBytes: 1 << 30, ChunkSize: 8 << 20}, noFetcher{})

	ioFailure := fmt.Errorf("chunkcache: mkdir /mnt/ro/cache: %w", syscall.EROFS)

	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"no error", nil, exitOK},
		{"bad input", badSetup(errors.New("unknown flag --x")), exitUsage},
		{"bad input, wrapped", fmt.Errorf("mount: %w", badSetup(errors.New("bucket \"x\" does not exist"))), exitUsage},
		{"cache directory refused", refused, exitUsage},
		{"cache directory on a read-only file system", ioFailure, exitFailure},
		{"mount failed", errors.New("mount /mnt/x: permission denied"), exitFailure},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if got := exitWith(&out, tt.err); got != tt.want {
				t.Errorf("exit %d, want %d (%v)", got, tt.want, tt.err)
			}
			want := ""
			if tt.err != nil {
				want = "s3docs: " + tt.err.Error() + "\n"
			}
			if out.String() != want {
				t.Errorf("printed %q, want %q", out.String(), want)
			}
		})
	}
}
