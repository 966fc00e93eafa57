//go:build !race

package pdfdoc

const raceEnabled = false
