package chunkcache

import "sync/atomic"

// Stats are counters since Open.
type Stats struct {
	Gets       int64 // GETs started: chunk fetches, and uncached reads while the disk is full
	GetBytes   int64 // bytes stored by completed fetches
	Hits       int64 // chunk reads served from disk at once
	Misses     int64 // chunk reads that had to wait for a fetch
	Joins      int64 // misses that shared another caller's fetch
	Evictions  int64
	Readaheads int64 // fetches started by readahead
	BadChunks  int64 // chunk files dropped for a wrong checksum or size
	InFlight   int64 // fetches running now
	Uncached   int64 // reads served straight from the object store: the cache could not store
	Backings   int64 // objects' files handed to the kernel (FUSE passthrough opens)
}

// counters are the live Stats, shared by the parts of the cache.
type counters struct {
	gets, getBytes, hits, misses, joins, evictions, readaheads, badChunks, inFlight, uncached, backings atomic.Int64
}

func (s *counters) snapshot() Stats {
	return Stats{
		Gets:       s.gets.Load(),
		GetBytes:   s.getBytes.Load(),
		Hits:       s.hits.Load(),
		Misses:     s.misses.Load(),
		Joins:      s.joins.Load(),
		Evictions:  s.evictions.Load(),
		Readaheads: s.readaheads.Load(),
		BadChunks:  s.badChunks.Load(),
		InFlight:   s.inFlight.Load(),
		Uncached:   s.uncached.Load(),
		Backings:   s.backings.Load(),
	}
}
