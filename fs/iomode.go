package fs

// FUSE passthrough: an open file handed to the kernel with a backing file
// (a file of the chunk cache holding the whole object version, or a part)
// is read by the kernel from that file, without the daemon. The kernel
// binds the backing file to the inode, not to the handle, and so has rules
// for an inode's handles (fs/fuse/iomode.c), which an open that breaks
// them fails with EIO:
//   - while a handle of the inode is open with passthrough, every open of
//     it must be passthrough too, with the same backing file;
//   - while a handle is open through the page cache, none may be
//     passthrough.
//
// ioModes keeps those rules for one inode, as the tree sees its handles.
// It does no I/O and takes no lock: its node's lock guards it, and opens and
// releases of one inode are serialized (observedFS), so that what it says
// and what go-fuse registered with the kernel (which hands every
// passthrough handle of an inode the backing file it registered first, and
// lets go of it only after the handle's Release) agree.
type ioModes struct {
	// backing is the identity of what backs the passthrough handles
	// open now (a version, a part), pass their number.
	backing string
	pass    int
	// other counts the handles open without passthrough.
	other int
}

// openMode is how an open may be served.
type openMode int

const (
	// openPlain: through the daemon (passthrough is off, or handles of
	// the inode are open without it).
	openPlain openMode = iota
	// openMayPass: with passthrough if there is a backing file, else
	// plain. No handle of the inode is open.
	openMayPass
	// openMustPass: with passthrough, on the backing file of the handles
	// open with it, which hold this very identity.
	openMustPass
	// openConflict: handles of another identity are open with
	// passthrough: the kernel would hand this one their file (another
	// version's bytes), or fail it. The open fails (EBUSY) until they are
	// closed.
	openConflict
)

// mode says how an open of identity id may be served, passthrough being
// enabled or not.
func (m *ioModes) mode(id string, enabled bool) openMode {
	switch {
	case m.pass > 0 && m.backing == id:
		return openMustPass
	case m.pass > 0:
		return openConflict
	case !enabled || m.other > 0:
		return openPlain
	}
	return openMayPass
}

// opened records a handle of id, opened with passthrough or not.
func (m *ioModes) opened(id string, pass bool) {
	if !pass {
		m.other++
		return
	}
	m.backing = id
	m.pass++
}

// released records that a handle was closed.
func (m *ioModes) released(pass bool) {
	if !pass {
		m.other--
		return
	}
	if m.pass--; m.pass == 0 {
		m.backing = ""
	}
}
