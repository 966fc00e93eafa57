package chunkcache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"s3docs/internal/object"
)

// Blobs keeps files derived from object versions (a page range of a PDF,
// its page count) for the splitter. A blob is an entry of the cache's
// disk, a file of its own in blobs/: in the same LRU as the chunks and
// under the same bound, and it survives restarts the same way. An evicted
// blob's file is unlinked, never punched: whoever has it open (a handle,
// the kernel through passthrough) keeps reading it whole. The splitter makes a blob in a
// TempFile and hands it over with AdmitBlob.
type Blobs struct {
	disk      *disk
	namespace string
}

// BlobID names the blob `what` of version v.
func (b *Blobs) BlobID(v object.Version, what string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00blob\x00%s", b.namespace, v.Key, v.Identity(), what)
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// OpenBlob opens a cached blob (ErrNotCached if there is none). The file
// stays readable even if the blob is evicted while open.
func (b *Blobs) OpenBlob(id string) (*os.File, error) {
	return b.disk.openBlob(id)
}

// TempFile creates a file in the cache's temporary directory, for AdmitBlob.
// Leftovers are removed at the next start.
func (b *Blobs) TempFile() (*os.File, error) {
	return b.disk.dir.Load().createTemp(blobTmpPrefix)
}

// AdmitBlob moves a finished file made with TempFile into the cache as blob
// id, and returns its size.
func (b *Blobs) AdmitBlob(id, tmpPath string) (int64, error) {
	d := b.disk.dir.Load()
	name, ok := d.isTempOf(tmpPath)
	if !ok {
		return 0, fmt.Errorf("chunkcache: %s is no temporary file of the cache in %s", tmpPath, d.path)
	}
	f, err := d.openTemp(name)
	if err != nil {
		return 0, err
	}
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	f.Close()
	if err != nil {
		d.removeTemp(name)
		return 0, err
	}
	if n == 0 {
		d.removeTemp(name)
		return 0, errors.New("chunkcache: refusing an empty blob")
	}
	e := &entry{id: id, name: fileName(id, n, h.Sum32()), key: entryKey{kind: kindBlob}, n: n, crc: h.Sum32(),
		verified: true, touched: time.Now().UnixNano()}
	if err := d.commitBlob(name, e.name); err != nil {
		d.removeTemp(name)
		return 0, err
	}
	b.disk.admitBlob(e)
	return n, nil
}
