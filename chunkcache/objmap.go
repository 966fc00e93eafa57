package chunkcache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// An object's map (objects/<id>.map) says which entries of the object's file
// hold the object's bytes, each with the crc32c of those bytes as they were
// fetched. It survives restarts and crashes as the names of chunk files did
// in the per-chunk layout: it is a header and a log of records, each
// appended after what it records is done (an entry's bytes written, before
// its ADD; its DEL before its bytes are punched), each with a checksum of
// its own. A record cut short or damaged (a crash of the machine, not of the
// daemon: a write of 24 bytes is not torn by a kill) ends the log there; an
// entry whose bytes did not reach the disk is found by its checksum when it
// is first read after a restart, as a chunk file was.
//
// Pieces and fragments are recorded as entries in their own right, not as a
// bitmap of present blocks: each must keep the checksum it was fetched with
// (a bitmap would need a checksum per 4 KiB block, 2,048 of them a chunk),
// they are few (fragments are bounded in number by the index, pieces are the
// misses of random readers), and an entry is what eviction takes out. The
// log is rewritten when dead records outnumber live ones (see disk.compact).

const (
	mapMagic      = "s3dmap1\n"
	mapHeaderSize = 32
	mapRecordSize = 24

	opAdd = 1
	opDel = 2
	// opExport records that the file was handed to the kernel
	// (passthrough): it is never punched again (see objFile.exported),
	// not even by the next daemon, since a program may keep it mapped.
	opExport = 3
)

// mapHeader is what a map says of its object: its size, which the file's
// size must equal, and the chunk size its entries are cut by.
type mapHeader struct {
	size, chunkSize int64
}

func (h mapHeader) encode() []byte {
	b := make([]byte, mapHeaderSize)
	copy(b, mapMagic)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.size))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.chunkSize))
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

var errBadMap = errors.New("not a map of this cache")

func decodeMapHeader(b []byte) (mapHeader, error) {
	if len(b) < mapHeaderSize || string(b[:8]) != mapMagic ||
		binary.LittleEndian.Uint32(b[28:]) != crc32.Checksum(b[:28], castagnoli) {
		return mapHeader{}, errBadMap
	}
	h := mapHeader{size: int64(binary.LittleEndian.Uint64(b[8:])), chunkSize: int64(binary.LittleEndian.Uint64(b[16:]))}
	if h.size <= 0 || h.chunkSize <= 0 {
		return mapHeader{}, errBadMap
	}
	return h, nil
}

// mapRecord adds (opAdd) or removes (opDel) an entry.
type mapRecord struct {
	op  byte
	key entryKey
	crc uint32
}

func (r mapRecord) encode() []byte {
	b := make([]byte, mapRecordSize)
	r.put(b)
	return b
}

func (r mapRecord) put(b []byte) {
	b[0] = r.op
	b[1] = byte(r.key.kind)
	binary.LittleEndian.PutUint32(b[4:], uint32(r.key.sub))
	binary.LittleEndian.PutUint64(b[8:], uint64(r.key.idx))
	binary.LittleEndian.PutUint32(b[16:], r.crc)
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
}

func decodeMapRecord(b []byte) (mapRecord, bool) {
	if binary.LittleEndian.Uint32(b[20:]) != crc32.Checksum(b[:20], castagnoli) || b[2] != 0 || b[3] != 0 {
		return mapRecord{}, false
	}
	r := mapRecord{op: b[0], key: entryKey{kind: entryKind(b[1]), sub: int64(binary.LittleEndian.Uint32(b[4:])),
		idx: int64(binary.LittleEndian.Uint64(b[8:]))}, crc: binary.LittleEndian.Uint32(b[16:])}
	if r.op < opAdd || r.op > opExport || r.key.idx < 0 {
		return mapRecord{}, false
	}
	return r, true
}

// liveEntry is an entry a map holds, with its checksum.
type liveEntry struct {
	key entryKey
	crc uint32
}

// replayed is what a map says.
type replayed struct {
	header mapHeader
	// live are the entries its records leave, in the order they were last
	// added.
	live     []liveEntry
	exported bool
	// records counts the records read; clean is false when the log ended
	// in a damaged record (the rest is ignored, and the map is rewritten).
	records int
	clean   bool
}

// replayMap reads a whole map.
func replayMap(b []byte, g geometry) (replayed, error) {
	var m replayed
	h, err := decodeMapHeader(b)
	if err != nil {
		return m, err
	}
	if h.chunkSize != g.chunkSize {
		return m, fmt.Errorf("%w: chunk size %d, want %d", errBadMap, h.chunkSize, g.chunkSize)
	}
	m.header = h
	var live []liveEntry
	order := map[entryKey]int{} // position in live
	m.clean = true
	for rest := b[mapHeaderSize:]; len(rest) > 0; rest = rest[mapRecordSize:] {
		if len(rest) < mapRecordSize {
			m.clean = false
			break
		}
		r, ok := decodeMapRecord(rest)
		if ok && r.op == opExport {
			m.records++
			m.exported = true
			continue
		}
		if !ok || !g.valid(h.size, r.key) {
			m.clean = false
			break
		}
		m.records++
		if i, ok := order[r.key]; ok {
			live[i].key.kind = 0 // superseded
			delete(order, r.key)
		}
		if r.op == opAdd {
			order[r.key] = len(live)
			live = append(live, liveEntry{r.key, r.crc})
		}
	}
	for _, e := range live {
		if e.key.kind != 0 {
			m.live = append(m.live, e)
		}
	}
	return m, nil
}

// encode is a map saying exactly m, as a rewrite makes it; m.records is set
// to the records it holds.
func (m *replayed) encode() []byte {
	m.records = len(m.live)
	if m.exported {
		m.records++
	}
	b := make([]byte, mapHeaderSize, mapHeaderSize+m.records*mapRecordSize)
	copy(b, m.header.encode())
	if m.exported {
		b = append(b, mapRecord{op: opExport}.encode()...)
	}
	for _, e := range m.live {
		b = append(b, mapRecord{op: opAdd, key: e.key, crc: e.crc}.encode()...)
	}
	return b
}
