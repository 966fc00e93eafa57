package main

import (
	"errors"
	"fmt"
	"io"

	"s3docs/chunkcache"
)

// Exit codes: 0 done, 1 failure while running, 2 bad input or setup that
// cannot work (flags, mount point, bucket, credentials, endpoint).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// setupError is bad input, or a setup that cannot work (mount point, cache
// directory, bucket, credentials, endpoint): the operator's to fix.
type setupError struct{ err error }

func (e setupError) Error() string { return e.err.Error() }
func (e setupError) Unwrap() error { return e.err }

func badSetup(err error) error {
	if err == nil {
		return nil
	}
	return setupError{err}
}

// childExit is a detached daemon that exited with a code of its own
// before its mount answered, having said why on the stderr it shares with
// the parent.
type childExit struct{ code int }

func (e childExit) Error() string { return fmt.Sprintf("the daemon exited with status %d", e.code) }

// exitWith is the one place where the commands' errors become exit codes:
// nil 0; a detached daemon's own code as it is (it said why); a setup
// error, or a cache directory refused for what it is, 2; anything else 1,
// each reported in one line.
func exitWith(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var ce childExit
	if errors.As(err, &ce) {
		return ce.code
	}
	fmt.Fprintf(stderr, "s3docs: %v\n", err)
	var se setupError
	if errors.As(err, &se) || errors.Is(err, chunkcache.ErrRefused) {
		return exitUsage
	}
	return exitFailure
}
