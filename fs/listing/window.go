package listing

// windowPages bounds the pages a listing holds ahead of its reader: about
// 32,000 entries, a few MiB.
const windowPages = 32

// window counts the pages a listing holds: fetched and not read yet, or
// being fetched. Every page takes a slot before its request is made and
// gives it back when the reader has taken its entries, or at once when it
// brought none. It is not safe for concurrent use: the stream's lock
// guards it.
type window struct {
	held, limit int
}

// acquire takes a slot for one more page: there is one while fewer than
// limit are held. A page the reader waits for (ahead) gets one beyond the
// limit, or a listing whose window is full of pages of later parts would
// never reach them.
func (w *window) acquire(ahead bool) bool {
	if w.held < w.limit || ahead {
		w.held++
		return true
	}
	return false
}

// release gives a slot back.
func (w *window) release() { w.held-- }

// full says whether a page that nobody waits for must wait.
func (w *window) full() bool { return w.held >= w.limit }
