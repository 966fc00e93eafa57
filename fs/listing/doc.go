// Package listing lists one directory level of an object store in key
// order, as a stream: a big directory is cut into key ranges (parts) that
// are listed at once and read in order, within a bounded memory window.
//
// It holds no FUSE code. Its pieces, each tested on its own:
//   - cuts (cuts.go) decides from the names themselves where to cut a part
//     and which cut depths are worth a probe: a pure type;
//   - part (part.go) is one key range's state: which entries of a page are
//     its own, and what a probe's page means for it;
//   - window (window.go) counts the pages fetched and not yet read;
//   - Stream (stream.go) only wires them: its goroutines fetch pages and
//     probes, and its reader hands out the entries in order.
package listing
