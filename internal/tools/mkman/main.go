// Command mkman writes the man pages of the Debian package, s3docs(1) and
// mount.fuse.s3docs(8), from the option table that `s3docs mount --help`
// prints (mountopts.Options), so that the two cannot disagree:
//
//	go run ./internal/tools/mkman -out DIR -version 0.1.0
//
// The pages are plain man(7) roff; scripts/package.sh compresses them.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"s3docs/mountopts"
)

func main() {
	out := flag.String("out", "", "directory to write s3docs.1 and mount.fuse.s3docs.8 into")
	version := flag.String("version", "", "version shown in the pages' footer")
	flag.Parse()
	if *out == "" || *version == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkman -out DIR -version VERSION")
		os.Exit(2)
	}
	for name, write := range map[string]func(io.Writer, string){
		"s3docs.1":            writeS3docs,
		"mount.fuse.s3docs.8": writeHelper,
	} {
		if err := writeFile(filepath.Join(*out, name), *version, write); err != nil {
			fmt.Fprintln(os.Stderr, "mkman:", err)
			os.Exit(1)
		}
	}
}

func writeFile(path, version string, write func(io.Writer, string)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	write(w, version)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// esc makes text safe in roff: a backslash is \e, a hyphen a minus sign
// (\-, so that options copied from the page work), and a line may not
// start with a control character.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// para writes lines of running text.
func para(w io.Writer, lines ...string) {
	fmt.Fprintln(w, ".PP")
	for _, l := range lines {
		fmt.Fprintln(w, esc(l))
	}
}

func writeS3docs(w io.Writer, version string) {
	fmt.Fprintf(w, ".TH S3DOCS 1 \"\" \"s3docs %s\" \"User Commands\"\n", esc(version))
	fmt.Fprintln(w, ".nh")
	fmt.Fprintln(w, ".SH NAME")
	fmt.Fprintln(w, `s3docs \- mount an S3 bucket of PDFs read\-only, through a bounded disk cache`)
	fmt.Fprintln(w, ".SH SYNOPSIS")
	for _, l := range []string{
		`.B s3docs mount\fR [\fIflags\fR] \fBs3://\fIBUCKET\fR[\fB/\fIPREFIX\fR] \fIMOUNTPOINT\fR`,
		`.B s3docs warm\fR [\fB\-\-mount\fI DIR\fR] \fIPATH\fR...`,
		`.B s3docs cache\fR \fBstatus\fR|\fBclear\fR [\fB\-\-cache\-dir\fI DIR\fR]`,
		`.B s3docs version`,
		`.B s3docs help`,
	} {
		fmt.Fprintln(w, ".br")
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w, ".SH DESCRIPTION")
	para(w,
		"s3docs mount shows the objects of an S3 bucket, or of a prefix of one, as a read-only file tree.",
		"Every read is served from a cache of chunks on disk, bounded by --cache-size; each chunk is fetched once,",
		"by one ranged GET pinned to the version of the object that was opened.",
		"The daemon runs in the foreground until the file system is unmounted or it gets SIGTERM or SIGINT,",
		"on which it unmounts and exits 0; bad input is reported in one line with exit code 2.")
	para(w,
		"Under .parts/ at the root of the mount (not listed, found by name), each PDF has a directory of",
		"page ranges: pages-0001-0050.pdf and so on, and any pages-A-B.pdf asked for by name.",
		"The page count is the extended attribute user.s3docs.pages of the PDF.")
	para(w,
		"Credentials and region come from the AWS SDK's default chain: the environment",
		"(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), the shared configuration and profile, or the instance role.")
	fmt.Fprintln(w, ".SH OPTIONS")
	para(w, "The flags of s3docs mount, also printed by s3docs mount --help:")
	for _, o := range mountopts.Options() {
		fmt.Fprintln(w, ".TP")
		if o.Arg != "" {
			fmt.Fprintf(w, ".BI \"\\-\\-%s \" %s\n", esc(o.Name), esc(o.Arg))
		} else {
			fmt.Fprintf(w, ".B \\-\\-%s\n", esc(o.Name))
		}
		help := o.Help
		if o.Default != "" {
			help += " (default " + o.Default + ")"
		}
		if o.Fstab != "" {
			help += "; in -o: " + o.Fstab
		}
		help += "."
		fmt.Fprintln(w, esc(help))
	}
	fmt.Fprintln(w, ".TP")
	fmt.Fprintln(w, `.BI \-o " OPTS"`)
	fmt.Fprintln(w, esc(mountopts.OptionsHelp+"."))
	fmt.Fprintln(w, ".TP")
	fmt.Fprintln(w, `.BR \-h ", " \-\-help`)
	fmt.Fprintln(w, "show the flags.")
	fmt.Fprintln(w, ".SH COMMANDS")
	fmt.Fprintln(w, ".TP")
	fmt.Fprintln(w, ".B warm")
	fmt.Fprintln(w, esc("reads files or directories (recursively, not .parts) through a running mount, so that its daemon's cache holds them; s3docs warm --help shows its flags."))
	fmt.Fprintln(w, ".TP")
	fmt.Fprintln(w, ".B cache status\\fR, \\fBcache clear")
	fmt.Fprintln(w, esc("shows what a cache directory holds, or empties it; clear refuses while a daemon uses the directory."))
	fmt.Fprintln(w, ".SH FILES")
	for _, f := range [][2]string{
		{"/etc/default/s3docs", "the settings of the systemd unit: S3DOCS_SOURCE (the bucket), S3DOCS_ARGS (flags), credentials. The unit does not start until S3DOCS_SOURCE is set."},
		{"/usr/lib/systemd/system/s3docs.service", "mounts S3DOCS_SOURCE at /mnt/s3docs."},
		{"/var/cache/s3docs", "the unit's cache directory (removed when the package is purged)."},
	} {
		fmt.Fprintln(w, ".TP")
		fmt.Fprintf(w, ".I %s\n", esc(f[0]))
		fmt.Fprintln(w, esc(f[1]))
	}
	fmt.Fprintln(w, ".SH EXIT STATUS")
	para(w, "0 done; 1 a failure while running; 2 bad input or a setup that cannot work (flags, mount point, bucket, credentials, endpoint).")
	fmt.Fprintln(w, ".SH SEE ALSO")
	fmt.Fprintln(w, `.BR mount.fuse.s3docs (8),`)
	fmt.Fprintln(w, `.BR fusermount3 (1),`)
	fmt.Fprintln(w, `.BR systemctl (1)`)
	para(w, "/usr/share/doc/s3docs/ holds the manual: README.md, and in docs/ configuration.md (every option, fstab, the unit), semantics.md (what a reader sees: versions, errors and their deadlines, the cache, the .parts tree), troubleshooting.md (every message), monitoring.md (metrics, dashboard, alerts), security.md, performance.md and design.md.")
}

func writeHelper(w io.Writer, version string) {
	fmt.Fprintf(w, ".TH MOUNT.FUSE.S3DOCS 8 \"\" \"s3docs %s\" \"System Administration\"\n", esc(version))
	fmt.Fprintln(w, ".nh")
	fmt.Fprintln(w, ".SH NAME")
	fmt.Fprintln(w, `mount.fuse.s3docs \- mount(8) helper for file systems of type fuse.s3docs`)
	fmt.Fprintln(w, ".SH SYNOPSIS")
	fmt.Fprintln(w, `.B mount \-t fuse.s3docs\fR [\fB\-o\fI OPTIONS\fR] \fIBUCKET\fR[\fB/\fIPREFIX\fR] \fIMOUNTPOINT\fR`)
	fmt.Fprintln(w, ".SH DESCRIPTION")
	para(w,
		"mount(8) runs this helper for a file system of type fuse.s3docs, from the command line or an fstab line such as:")
	fmt.Fprintln(w, ".PP")
	fmt.Fprintln(w, ".nf")
	fmt.Fprintln(w, esc("docs  /mnt/s3docs  fuse.s3docs  _netdev,allow_other,endpoint_url=http://s3.internal:7070,force_path_style,cache_size=10GiB  0 0"))
	fmt.Fprintln(w, ".fi")
	para(w,
		"It runs s3docs mount --detach, which returns once the mount answers, or fails with the reason;",
		"the daemon stays, and umount stops it. The source is BUCKET[/PREFIX] or s3://BUCKET[/PREFIX].")
	fmt.Fprintln(w, ".SH OPTIONS")
	para(w, "Each flag of s3docs mount is an option of -o, its name with _ for -:")
	for _, o := range mountopts.Options() {
		if o.Fstab == "" {
			continue
		}
		fmt.Fprintln(w, ".TP")
		if o.Arg != "" {
			fmt.Fprintf(w, ".BI %s= %s\n", esc(o.Fstab), esc(o.Arg))
		} else {
			fmt.Fprintf(w, ".B %s\n", esc(o.Fstab))
		}
		fmt.Fprintln(w, esc(o.Help+"."))
	}
	para(w, "mount(8)'s own options (rw, ro, nofail, _netdev, defaults, x-systemd.* and the like) are accepted and ignored.")
	fmt.Fprintln(w, ".SH SEE ALSO")
	fmt.Fprintln(w, `.BR s3docs (1),`)
	fmt.Fprintln(w, `.BR mount (8),`)
	fmt.Fprintln(w, `.BR fstab (5)`)
}
