package pdfdoc

// knownBroken lists the odd files of pdfgen.OddFiles (by name) on which
// pdfdoc fails TestDifferential or TestIssue20Regressions today, with what
// goes wrong (measured on main at f9d2c33). Their failures are logged, not
// failed, so the branch stays green while the reader is fixed;
// S3DOCS_DIFF_STRICT=1 fails them too. A file listed here that passes
// fails the test: remove it. The list can only shrink; once it is empty,
// remove it and the S3DOCS_DIFF_STRICT switch.
func knownBroken() map[string]string {
	return map[string]string{
		// Page tree: the flat-node shortcut (/Count == len(/Kids)).
		"pagetree-issue-empty-node":             "case 1: pages after the empty node shift by one (part 51-100 shows 50-99), depending on what was asked first",
		"pagetree-issue-count-lie":              "case 1 variant: PageCount 48 (the lying /Count), qpdf 50; pages after the hidden node shift by 2 or are refused",
		"pagetree-empty-node-mutool-linearized": "case 1 through mutool clean -l: pages shift by one, depending on what was asked first",
		"encrypt-aes-256-empty-node":            "case 1 under AES-256: pages shift by one, depending on what was asked first",
		"pagetree-inner-count-equals-kids":      "an inner node's /Count equals its kids: PageCount 22, qpdf 24; pages shift by 2, or are refused",
		"pagetree-node-typed-page":              "an inner node with /Kids that says /Type /Page is taken for a page: PageCount 8, qpdf (and poppler, mutool) 10",
		// Page tree: compatibility (Open fails).
		"pagetree-issue-missing-kid": "Open fails: object 67 (named in /Kids, not in the file): not a page or page tree node",
		"pagetree-issue-kids-freed":  "Open fails: object 27 (named in /Kids, free): not a page or page tree node",
		"pagetree-issue-deep-300":    "Open fails: page tree deeper than 256 levels",
		"objstm-issue-first-off-2":   "Open fails: the object stream's header is read only up to /First, so the root's offset loses 2 digits: object 34: not a page or page tree node",
		// Stream bounds.
		"stream-issue-space-crlf": "case 2: \"stream \\r\\n\": every page blank, parts fail qpdf --check (inflate: incorrect header check)",
		"stream-space-lf":         "\"stream \\n\": every page blank, parts fail qpdf --check",
		"stream-tab-lf":           "\"stream\\t\\n\": every page blank, parts fail qpdf --check",
		// Resource scan: inline images.
		"inline-issue-ei-lt": "case 3: the Courier font used after the image is dropped (text lost on odd pages)",
		"inline-ei-space":    "\" EI <\" in image data: the font used after the image is dropped",
		"inline-l-key":       "/L given, \" EI<\" in the data: the font used after the image is dropped",
		"inline-length-key":  "/Length given, \" EI<\" in the data: the font used after the image is dropped",
		"inline-fl-stored":   "/F /Fl data holding \" EI<\": the font used after the image is dropped",
		// Resource scan: borrowed resources.
		"form-issue-nested-nores":  "case 4: a form without /Resources drawn by a form with /Resources: its Times font is dropped",
		"form-nores-three-levels":  "a form without /Resources three forms down: its Times font is dropped",
		"inline-in-borrowing-form": "a form without /Resources with \" EI<\" in an inline image: its Times font is dropped",
		"annot-issue-ap-nores":     "case 4: a stamp's appearance without /Resources: its Times font is dropped",
		"annot-ap-states-nores":    "an appearance state dictionary without /Resources: its Times font is dropped",
	}
}
