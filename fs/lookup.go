package fs

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"s3docs/fs/listing"
	"s3docs/internal/object"
)

// DefaultLookupTimeout is the one deadline of a lookup (its HEAD and its
// listing together), retries included.
const DefaultLookupTimeout = 30 * time.Second

// The rules of a name, the same for a lookup and for a listing:
//   - A name is a file if an object has the key dir+name, a directory if a
//     key starts with dir+name+"/", and both cannot be: the file wins, and
//     what is under the prefix is not reachable through the mount.
//   - Keys that cannot be file names are skipped (validName); so are files
//     that claim a negative size, and at the root the name of the tree of
//     parts.
//   - What is known is trusted for the metadata TTL, absence too: a fresh
//     answer for the key, or a fresh whole listing of its directory,
//     answers without a request. Anything else costs one HEAD and one
//     listing of at most one key, sent together; a HEAD that finds the
//     object answers at once, without waiting for the listing.

// resolve answers what name is in the directory dir ("" or "a/b/").
func (f *FS) resolve(ctx context.Context, dir, name string) (answer, error) {
	if !validName(name) || f.hidden(dir, name) {
		return answer{}, nil
	}
	key := dir + name
	if a, ok := f.meta.answer(key); ok {
		return a, nil
	}
	if l, ok := f.meta.listing(dir); ok {
		return l.find(name), nil
	}
	// Detached from the caller: others may be waiting for the same answer.
	ch := f.lookups.DoChan(key, func() (any, error) { return f.resolveRemote(dir, name) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return answer{}, r.Err
		}
		return r.Val.(answer), nil
	case <-ctx.Done():
		return answer{}, ctx.Err()
	}
}

// listDelay is the head start of a lookup's HEAD on its listing. A
// listing costs the server more than a HEAD (versitygw reads the whole
// folder for it: 0.1 s and more in a folder of 100,000 files, which slowed
// the HEADs it ran beside 2-3 times), and S3 bills it at ten HEADs.
const listDelay = 20 * time.Millisecond

// resolveRemote asks the store what dir+name is, within the lookup
// deadline.
func (f *FS) resolveRemote(dir, name string) (answer, error) {
	key := dir + name
	ctx, cancel := context.WithTimeout(f.ctx, f.opt.LookupTimeout)
	defer cancel()
	gen := f.meta.generation()
	type listed struct {
		dir bool
		err error
	}
	listCtx, stopList := context.WithCancel(ctx)
	defer stopList()
	listAnswer := make(chan listed, 1)
	headDone := make(chan struct{})
	go func() {
		hedge := time.NewTimer(listDelay)
		defer hedge.Stop()
		if f.opt.Throttled != nil && f.opt.Throttled() {
			hedge.Stop() // one request at a time while the store throttles
		}
		select {
		case <-headDone:
		case <-hedge.C:
		}
		if err := listCtx.Err(); err != nil {
			listAnswer <- listed{err: err} // the HEAD found the file
			return
		}
		// Every key under name/ sorts after name+"."+MaxRune ('.' comes
		// just before '/'), and so does nothing else but keys that go on
		// with U+10FFFF or bytes that are not UTF-8.
		page, err := f.opt.Store.ListPage(listCtx, object.ListRequest{
			Prefix: dir, Delimiter: true, StartAfter: key + "." + listing.MaxRune, MaxKeys: 1})
		listAnswer <- listed{dir: len(page.Dirs) > 0 && page.Dirs[0] == name, err: err}
	}()
	var a answer
	v, err := f.opt.Store.Head(ctx, key)
	found := err == nil && f.acceptVersion(v)
	if found {
		// The file wins whatever the listing says: do not wait for it.
		stopList()
	}
	close(headDone)
	switch {
	case found:
		a = answer{kind: isFile, v: v}
	case err == nil || errors.Is(err, object.ErrNotFound):
		r := <-listAnswer
		if r.err != nil {
			return answer{}, r.err
		}
		if r.dir {
			a = answer{kind: isDir}
		}
	default:
		return answer{}, err
	}
	f.meta.putAnswer(key, a, gen)
	f.log.Debug("looked up", "key", key, "kind", a.kind)
	return a, nil
}

// acceptVersion says whether v can be served; a negative size (a broken
// or hostile server, or a listing entry without a size) cannot, and is
// skipped with one warning, in listings and lookups alike.
func (f *FS) acceptVersion(v object.Version) bool {
	if v.Size < 0 {
		f.warns.warn(v.Key, "skipping object with a negative or missing size", "size", v.Size)
		return false
	}
	return true
}

// hidden says whether dir+name is the tree of parts' name at the root.
// Listed, .parts would lead find, du and updatedb into the tree of parts,
// and make them parse every PDF; it is not listed, and whatever the bucket
// has under that name is not reachable.
func (f *FS) hidden(dir, name string) bool {
	if f.opt.Parts == nil || dir != "" || name != partsRoot {
		return false
	}
	f.warns.warn(partsRoot, "an object or prefix named .parts at the root is hidden by the tree of parts")
	return true
}

// validName rejects what a POSIX directory entry cannot hold.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= 255 &&
		!strings.ContainsAny(name, "\x00/")
}

// warnOdd notes, once, a name that is a valid file name but may surprise
// the tools that print or split names: control characters (a newline
// breaks `find | xargs`) or bytes that are not UTF-8. It is served as it
// is; the log quotes it.
func (f *FS) warnOdd(key, name string) {
	if !utf8.ValidString(name) {
		f.warns.warn(key, "key is not valid UTF-8; served under its raw bytes")
		return
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		f.warns.warn(key, "key holds control characters; served as it is")
	}
}

// view applies the rules of a name to the entries of one listing, in
// order. A file and a directory of the same name are not next to each
// other in a listing ("a", "a.pdf", "a/"): shadow holds the files whose
// directory position ("name/") has not been reached yet. Each is longer
// than the one below it, so it holds at most 255 names.
type view struct {
	f      *FS
	dir    string
	shadow []string
}

// admit says whether e is shown, warning once about what is not.
func (v *view) admit(e entry) bool {
	key := v.dir + e.Name
	if e.Dir {
		key += "/"
	}
	if !validName(e.Name) {
		if e.Dir {
			v.f.warns.warn(key, "skipping key that cannot be a directory name")
		} else {
			v.f.warns.warn(key, "skipping key that cannot be a file name")
		}
		return false
	}
	if v.f.hidden(v.dir, e.Name) || (!e.Dir && !v.f.acceptVersion(e.Version)) {
		return false
	}
	pos := e.Pos()
	for n := len(v.shadow); n > 0 && v.shadow[n-1]+"/" < pos; n-- {
		v.shadow = v.shadow[:n-1]
	}
	if e.Dir {
		if n := len(v.shadow); n > 0 && v.shadow[n-1] == e.Name {
			// The file keeps the name; the directory's contents are not
			// reachable through this mount.
			v.f.warns.warn(v.dir+e.Name, "a file and a directory share this name; serving the file")
			return false
		}
	} else {
		v.shadow = append(v.shadow, e.Name)
	}
	v.f.warnOdd(key, e.Name)
	return true
}
