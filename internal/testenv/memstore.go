package testenv

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"s3docs/internal/object"
)

// MemStore is an object store in memory for the tests of listings and
// lookups. It answers listings as S3 does (in key order, a page at a
// time, with common prefixes under a delimiter) and counts its calls.
// Objs may be filled before the store is used; after that, Put and
// Remove change it.
type MemStore struct {
	Objs map[string]object.Version
	// PageSize is the most entries a page holds (1,000 if 0).
	PageSize int
	// ListDelay, if set, is waited in each ListPage.
	ListDelay time.Duration
	// ProbeDelay, if set, is waited in each lookup's listing (of one key),
	// HeadDelay in each HEAD.
	ProbeDelay  time.Duration
	HeadDelay   time.Duration
	Lists       atomic.Int64 // ListPage calls of directory pages
	Probes      atomic.Int64 // ListPage calls of one key (lookups)
	Heads       atomic.Int64
	InFlight    atomic.Int64 // ListPage calls running now
	MaxInFlight atomic.Int64
	// Alone counts the ListPage calls of directory pages that began with
	// no other call in flight: a listing that went sequential.
	Alone atomic.Int64

	mu     sync.Mutex
	sorted []string // the keys in order, nil when Objs changed
}

// keysAfter returns the keys with prefix after after, in order.
func (s *MemStore) keysAfter(prefix, after string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sorted) != len(s.Objs) {
		s.sorted = s.sorted[:0]
		for k := range s.Objs {
			s.sorted = append(s.sorted, k)
		}
		sort.Strings(s.sorted)
	}
	from := max(after, prefix)
	i := sort.SearchStrings(s.sorted, from)
	if i < len(s.sorted) && s.sorted[i] == after {
		i++
	}
	j := i
	for j < len(s.sorted) && strings.HasPrefix(s.sorted[j], prefix) {
		j++
	}
	return slices.Clone(s.sorted[i:j])
}

// ListPage answers one ListObjectsV2 request.
func (s *MemStore) ListPage(ctx context.Context, req object.ListRequest) (object.Page, error) {
	if err := ctx.Err(); err != nil {
		return object.Page{}, err // never sent
	}
	probe := req.MaxKeys == 1 // a lookup's
	if probe {
		s.Probes.Add(1)
	} else {
		s.Lists.Add(1)
	}
	n := s.InFlight.Add(1)
	defer s.InFlight.Add(-1)
	if n == 1 && !probe {
		s.Alone.Add(1)
	}
	for m := s.MaxInFlight.Load(); n > m && !s.MaxInFlight.CompareAndSwap(m, n); m = s.MaxInFlight.Load() {
	}
	delay := s.ListDelay
	if probe && s.ProbeDelay > 0 {
		delay = s.ProbeDelay
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return object.Page{}, ctx.Err()
		}
	}
	return s.page(req), nil
}

// page is the answer to req.
func (s *MemStore) page(req object.ListRequest) object.Page {
	max := req.MaxKeys
	if s.PageSize > 0 && (max == 0 || max > s.PageSize) {
		max = s.PageSize
	}
	if max == 0 {
		max = 1000
	}
	after := req.StartAfter
	if req.Token != "" {
		after = req.Token
	}
	keys := s.keysAfter(req.Prefix, after)
	var page object.Page
	entries := 0
	for i := 0; i < len(keys); i++ {
		k := keys[i]
		rest := k[len(req.Prefix):]
		if j := strings.IndexByte(rest, '/'); req.Delimiter && j >= 0 {
			if entries == max {
				page.Truncated = true
				break
			}
			cp := req.Prefix + rest[:j+1]
			page.Dirs = append(page.Dirs, rest[:j])
			entries++
			page.NextToken = cp + "\U0010FFFF"
			for i+1 < len(keys) && strings.HasPrefix(keys[i+1], cp) {
				i++
			}
			continue
		}
		if entries == max {
			page.Truncated = true
			break
		}
		s.mu.Lock()
		page.Files = append(page.Files, s.Objs[k])
		s.mu.Unlock()
		entries++
		page.NextToken = k
	}
	if !page.Truncated {
		page.NextToken = ""
	}
	return page
}

// Head answers a HEAD of key.
func (s *MemStore) Head(ctx context.Context, key string) (object.Version, error) {
	s.Heads.Add(1)
	if s.HeadDelay > 0 {
		select {
		case <-time.After(s.HeadDelay):
		case <-ctx.Done():
			return object.Version{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.Objs[key]
	if !ok {
		return object.Version{}, object.ErrNotFound
	}
	return v, nil
}

// Get returns the version of key, if there is one.
func (s *MemStore) Get(key string) (object.Version, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.Objs[key]
	return v, ok
}

// Keys returns every key.
func (s *MemStore) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.Objs))
	for k := range s.Objs {
		keys = append(keys, k)
	}
	return keys
}

// Put adds or replaces an object.
func (s *MemStore) Put(v object.Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Objs[v.Key] = v
	s.sorted = nil
}

// Remove deletes an object.
func (s *MemStore) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.Objs, key)
	s.sorted = nil
}

// Version is an object version as the tests make them: key, ETag and size,
// with a fixed time.
func Version(key, etag string, size int) object.Version {
	return object.Version{Key: key, ETag: etag, Size: int64(size), ModTime: time.Unix(1700000000, 0)}
}
