package listing

import (
	"cmp"
	"slices"
	"strings"

	"s3docs/internal/object"
)

// MaxRune ends names: "g"+MaxRune sorts after every valid UTF-8 key that
// starts with g except those that go on with U+10FFFF itself.
const MaxRune = "\U0010FFFF"

// Entry is one name of a directory listing.
type Entry struct {
	Name    string
	Dir     bool
	Version object.Version // files only
}

// Pos is where the entry sorts in a listing: a directory sorts as its
// prefix, "name/".
func (e Entry) Pos() string {
	if e.Dir {
		return e.Name + "/"
	}
	return e.Name
}

// pageEntries turns a page into entries sorted by position. A folder
// marker (the directory's own key) is not an entry.
func pageEntries(prefix string, page object.Page) []Entry {
	out := make([]Entry, 0, len(page.Dirs)+len(page.Files))
	for _, d := range page.Dirs {
		out = append(out, Entry{Name: d, Dir: true})
	}
	for _, v := range page.Files {
		name, ok := strings.CutPrefix(v.Key, prefix)
		if !ok || name == "" {
			continue
		}
		out = append(out, Entry{Name: name, Version: v})
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Pos(), b.Pos()) })
	return out
}
