package chunkcache

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// Open refuses a cache directory others can read, and t.TempDir makes
// directories 0777 &^ umask: with 077 they are private, as an operator's
// would be.
func TestMain(m *testing.M) {
	syscall.Umask(0o077)
	os.Exit(m.Run())
}

// The options mountopts gives a daemon, for tests that do not care.
const (
	testGets        = 16
	testReadTimeout = time.Minute
)
