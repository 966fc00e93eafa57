package fs

import (
	"fmt"
	"strconv"
	"strings"
)

// partName is the listed name of pages from..thru of a PDF with count
// pages: zero-padded to at least 4 digits, and to the digits of the count,
// so that the names sort in page order.
func partName(from, thru, count int) string {
	w := max(4, len(strconv.Itoa(count)))
	return fmt.Sprintf("pages-%0*d-%0*d.pdf", w, from, w, thru)
}

// parsePartName accepts "pages-A-B.pdf" with decimal A and B (any zero
// padding); it does not check them against a page count.
func parsePartName(name string) (from, thru int, ok bool) {
	rest, ok := strings.CutPrefix(name, "pages-")
	if !ok {
		return 0, 0, false
	}
	rest, ok = strings.CutSuffix(rest, ".pdf")
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false
	}
	from, ok1 := parsePage(a)
	thru, ok2 := parsePage(b)
	return from, thru, ok1 && ok2
}

// maxPageDigits bounds a page number's digits once its zero padding is
// gone: more than any page count, far from int's limit.
const maxPageDigits = 12

// parsePage takes only digits: strconv.Atoi would also take "+7" and "-0".
// Any zero padding is accepted (the file name's own limit bounds it).
func parsePage(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	if s = strings.TrimLeft(s, "0"); s == "" {
		return 0, true
	}
	if len(s) > maxPageDigits {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// listedParts are the parts a PDF's directory lists: runs of per pages.
func listedParts(count, per int) []string {
	var names []string
	for from := 1; from <= count; from += per {
		names = append(names, partName(from, min(from+per-1, count), count))
	}
	return names
}

// isPDFKey says whether an object gets a directory under .parts/.
func isPDFKey(name string) bool {
	return len(name) > 4 && strings.EqualFold(name[len(name)-4:], ".pdf")
}
