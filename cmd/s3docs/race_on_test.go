//go:build race

package main

// raceEnabled: the race detector multiplies memory use, so RSS bounds are
// checked by a run without it (scripts/test.sh runs one).
const raceEnabled = true
