//go:build race

package pdfdoc

// raceEnabled: the race detector multiplies memory use, so RSS bounds are
// checked only without it (scripts/test.sh runs TestBigPDF without -race).
const raceEnabled = true
