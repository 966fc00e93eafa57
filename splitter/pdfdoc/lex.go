package pdfdoc

import (
	"bytes"
	"errors"
)

// The lexical layer: just enough of PDF's syntax (ISO 32000-1, 7.2 and 7.3)
// to find where one object ends in a window of bytes, so that exactly that
// text goes to pdfcpu's parser, and to find keywords in a scan. It never
// recurses: depth is a counter, so a hostile nesting costs a number, not
// the stack.

var (
	// errShort: the window ends before the value does; read more.
	errShort = errors.New("value runs past the bytes read")
	// errSyntax: the bytes are not a PDF value.
	errSyntax = errors.New("PDF syntax error")
)

func isSpace(ch byte) bool {
	switch ch {
	case 0, '\t', '\n', '\f', '\r', ' ':
		return true
	}
	return false
}

func isDelim(ch byte) bool {
	switch ch {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

func isDigit(ch byte) bool { return ch >= '0' && ch <= '9' }

// skipSpace returns the index of the first byte at or after i that is
// neither white space nor part of a comment.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch {
		case isSpace(b[i]):
			i++
		case b[i] == '%':
			for i < len(b) && b[i] != '\n' && b[i] != '\r' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// regularEnd returns the end of the run of regular characters at i.
func regularEnd(b []byte, i int) int {
	for i < len(b) && !isSpace(b[i]) && !isDelim(b[i]) {
		i++
	}
	return i
}

// literalEnd returns the index after the literal string starting at b[i]
// ('('), honouring nesting and backslash escapes, or -1 if b ends first.
func literalEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// token is one lexical token of a window.
type token struct {
	kind  byte // see the tok* constants
	start int
	end   int
}

const (
	tokEOF     = 0
	tokRegular = 'r' // a number, keyword or anything else without delimiters
	tokName    = '/'
	tokString  = '('
	tokHex     = '<'
	tokDictBeg = 'd' // <<
	tokDictEnd = 'D' // >>
	tokArrBeg  = '['
	tokArrEnd  = ']'
	tokOther   = '?' // { } and a stray ) or >
)

// nextToken returns the token at or after i. A token that the window cuts
// short (a string without its end, a name or number touching the window's
// end when more may follow) is errShort unless atEOF.
func nextToken(b []byte, i int, atEOF bool) (token, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		if atEOF {
			return token{kind: tokEOF, start: i, end: i}, nil
		}
		return token{}, errShort
	}
	switch ch := b[i]; ch {
	case '(':
		end := literalEnd(b, i)
		if end < 0 {
			if atEOF {
				return token{}, errSyntax
			}
			return token{}, errShort
		}
		return token{tokString, i, end}, nil
	case '<':
		if i+1 >= len(b) {
			if atEOF {
				return token{}, errSyntax
			}
			return token{}, errShort
		}
		if b[i+1] == '<' {
			return token{tokDictBeg, i, i + 2}, nil
		}
		end := bytes.IndexByte(b[i:], '>')
		if end < 0 {
			if atEOF {
				return token{}, errSyntax
			}
			return token{}, errShort
		}
		return token{tokHex, i, i + end + 1}, nil
	case '>':
		if i+1 >= len(b) {
			if atEOF {
				return token{tokOther, i, i + 1}, nil
			}
			return token{}, errShort
		}
		if b[i+1] == '>' {
			return token{tokDictEnd, i, i + 2}, nil
		}
		return token{tokOther, i, i + 1}, nil
	case '[':
		return token{tokArrBeg, i, i + 1}, nil
	case ']':
		return token{tokArrEnd, i, i + 1}, nil
	case '/':
		end := regularEnd(b, i+1)
		if end == len(b) && !atEOF {
			return token{}, errShort
		}
		return token{tokName, i, end}, nil
	case ')', '{', '}':
		return token{tokOther, i, i + 1}, nil
	}
	end := regularEnd(b, i)
	if end == len(b) && !atEOF {
		return token{}, errShort
	}
	return token{tokRegular, i, end}, nil
}

func isUint(b []byte) bool {
	if len(b) == 0 || len(b) > 10 {
		return false
	}
	for _, ch := range b {
		if !isDigit(ch) {
			return false
		}
	}
	return true
}

// parseUint returns the value of a run of at most 18 digits, or -1.
func parseUint(b []byte) int64 {
	if len(b) == 0 || len(b) > 18 {
		return -1
	}
	var v int64
	for _, ch := range b {
		if !isDigit(ch) {
			return -1
		}
		v = v*10 + int64(ch-'0')
	}
	return v
}

// valueEnd returns the index after the one value starting at or after i: a
// dictionary or array with everything in it, a string, a name, a number, a
// keyword, or an indirect reference "n g R". Nesting deeper than maxDepth is
// errDepth.
func valueEnd(b []byte, i int, atEOF bool, maxDepth int) (int, error) {
	depth := 0
	for {
		t, err := nextToken(b, i, atEOF)
		if err != nil {
			return 0, err
		}
		switch t.kind {
		case tokEOF:
			return 0, errSyntax
		case tokDictBeg, tokArrBeg:
			depth++
			if depth > maxDepth {
				return 0, errDepth
			}
		case tokDictEnd, tokArrEnd:
			depth--
			if depth < 0 {
				return 0, errSyntax
			}
		case tokOther:
			if depth == 0 {
				return 0, errSyntax
			}
		case tokRegular:
			if depth == 0 && isUint(b[t.start:t.end]) {
				// Perhaps a reference: "n g R" is one value.
				if end, ok, err := refEnd(b, t.end, atEOF); err != nil {
					return 0, err
				} else if ok {
					return end, nil
				}
			}
		}
		i = t.end
		if depth == 0 {
			return i, nil
		}
	}
}

// refEnd reports whether "g R" follows at i (after an unsigned integer), and
// where it ends.
func refEnd(b []byte, i int, atEOF bool) (int, bool, error) {
	g, err := nextToken(b, i, atEOF)
	if err != nil || g.kind != tokRegular || !isUint(b[g.start:g.end]) {
		return 0, false, err
	}
	r, err := nextToken(b, g.end, atEOF)
	if err != nil || r.kind != tokRegular || string(b[r.start:r.end]) != "R" {
		return 0, false, err
	}
	return r.end, true, nil
}

// objHeader parses "n g obj" at the start of b (after white space) and
// returns n, g and the index after "obj"; ok is false if b does not start
// with an object header.
func objHeader(b []byte) (num, gen int64, end int, ok bool) {
	i := skipSpace(b, 0)
	j := regularEnd(b, i)
	num = parseUint(b[i:j])
	if num < 0 || j >= len(b) || !isSpace(b[j]) {
		return 0, 0, 0, false
	}
	i = skipSpace(b, j)
	j = regularEnd(b, i)
	gen = parseUint(b[i:j])
	if gen < 0 {
		return 0, 0, 0, false
	}
	i = skipSpace(b, j)
	// "obj" may touch what follows ("1 0 obj<<"): it ends at a delimiter.
	if !bytes.HasPrefix(b[i:], []byte("obj")) {
		return 0, 0, 0, false
	}
	end = i + 3
	if end < len(b) && !isSpace(b[end]) && !isDelim(b[end]) {
		return 0, 0, 0, false
	}
	return num, gen, end, true
}

// streamStart reports whether the keyword "stream" follows at i (after
// white space and comments) and returns the index where the stream's data
// begins, as qpdf finds it: after the end of line that should follow the
// keyword (CR LF or LF, or a CR alone), skipping spaces, tabs, form feeds
// and vertical tabs before it (producers write "stream \r\n"); with no end
// of line, the data begins at the first other byte. short means that b
// ends before that is settled: read more.
func streamStart(b []byte, i int) (data int, ok, short bool) {
	i = skipSpace(b, i)
	if !bytes.HasPrefix(b[i:], []byte("stream")) {
		return 0, false, false
	}
	i += len("stream")
	if i < len(b) && !isSpace(b[i]) && !isDelim(b[i]) {
		return 0, false, false // "streamX": not the keyword
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case '\n':
			return i + 1, true, false
		case '\r':
			if i+1 == len(b) {
				return 0, true, true
			}
			if b[i+1] == '\n' {
				return i + 2, true, false
			}
			return i + 1, true, false
		case ' ', '\t', '\f', '\v':
		default:
			return i, true, false
		}
	}
	return 0, true, true
}
