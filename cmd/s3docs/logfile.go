package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// logFile is the --log-file: appended to, and reopened on SIGHUP so that
// logrotate can move it away.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
	// log, once set, gets a line in the new file after each reopen: it
	// tells logrotate's user (and the tests) that the switch is done.
	log *slog.Logger
}

// announceReopens makes each later reopen log a line through log.
func (l *logFile) announceReopens(log *slog.Logger) {
	l.mu.Lock()
	l.log = log
	l.mu.Unlock()
}

func openLogFile(path string) (*logFile, error) {
	l := &logFile{path: path}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen switches to a fresh open of the path; the old file is closed.
func (l *logFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("--log-file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	log := l.log
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	if log != nil {
		log.Info("log file reopened", "path", l.path)
	}
	return nil
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
