package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	// Region is the region versitygw is started with and the clients use.
	Region = "us-east-1"

	startTimeout = 20 * time.Second // until versitygw answers HTTP
	stopTimeout  = 10 * time.Second // between SIGTERM and SIGKILL
	opTimeout    = 2 * time.Minute  // one S3 call made by a helper (PutFile of 1 GiB included)
	logTailBytes = 8 << 10
)

// S3 is a running versitygw (posix backend) on a loopback port, started by
// StartS3 and stopped when the test ends.
type S3 struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Region    string // "us-east-1"
	Root      string // the posix root: each directory in it is a bucket
	Client    *s3.Client
	LogPath   string        // versitygw's stdout and stderr
	StartTime time.Duration // from exec to the first HTTP answer

	staging string // same file system as Root, outside it: PutRaw writes here, then renames
}

// StartS3 starts versitygw on a free 127.0.0.1 port with a fresh, empty root
// (under t.TempDir()), waits until it answers HTTP (at most 20s), and stops it
// in t.Cleanup (SIGTERM, then SIGKILL after 10s). Its output goes to LogPath;
// if the test failed, the tail of it is logged at cleanup.
//
// The server runs with keep-alive on (versitygw closes every connection
// after one request by default) and without any inherited VGW_* / ROOT_*
// environment.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	bin := VersitygwPath(t)
	dir := t.TempDir()
	s := &S3{
		AccessKey: "testenv-access-key",
		SecretKey: "testenv-secret-key-0123456789",
		Region:    Region,
		Root:      filepath.Join(dir, "root"),
		LogPath:   filepath.Join(dir, "versitygw.log"),
		staging:   filepath.Join(dir, "staging"),
	}
	for _, d := range []string{s.Root, s.staging} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer logf.Close() // the child holds its own descriptor

	// A port found free may be taken before versitygw binds it: retry then.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
		fmt.Fprintf(logf, "=== testenv: starting versitygw on %s (attempt %d)\n", endpoint, attempt+1)
		cmd := exec.Command(bin,
			"--port", "127.0.0.1:"+strconv.Itoa(port),
			"--access", s.AccessKey,
			"--secret", s.SecretKey,
			"--region", s.Region,
			"--keep-alive",
			"posix", s.Root)
		cmd.Env = serverEnv()
		cmd.Stdout = logf
		cmd.Stderr = logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // do not outlive a crashed test binary
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatalf("testenv: start %s: %v", bin, err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()

		lastErr = waitReady(endpoint, exited, startTimeout)
		if lastErr == nil {
			lastErr = s.checkOwnServer(endpoint)
		}
		if lastErr != nil {
			stopProcess(cmd, exited)
			select {
			case <-exited:
				lastErr = fmt.Errorf("%w (versitygw exited: %v)", lastErr, waitErr)
			default:
			}
			continue
		}
		s.Endpoint = endpoint
		s.StartTime = time.Since(start)
		t.Cleanup(func() {
			stopProcess(cmd, exited)
			if t.Failed() {
				t.Logf("testenv: versitygw on %s, log %s, tail:\n%s", s.Endpoint, s.LogPath, fileTail(s.LogPath, logTailBytes))
			}
		})
		s.Client = s.NewClient(s.Endpoint)
		return s
	}
	t.Fatalf("testenv: versitygw did not start: %v\nlog tail:\n%s", lastErr, fileTail(s.LogPath, logTailBytes))
	return nil
}

// serverEnv is the environment of versitygw: ours without its own settings.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady polls endpoint until versitygw answers any HTTP response
// (an unsigned GET / answers 403 AccessDenied): another process, whose
// readiness shows only from outside.
func waitReady(endpoint string, exited <-chan struct{}, timeout time.Duration) error {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	var err, final error
	if Eventually(timeout, func() bool {
		select {
		case <-exited:
			final = errors.New("versitygw exited before answering")
			return true
		default:
		}
		var resp *http.Response
		if resp, err = hc.Get(endpoint + "/"); err != nil {
			return false
		}
		_ = resp.Body.Close()
		if srv := resp.Header.Get("Server"); !strings.Contains(strings.ToUpper(srv), "VERSITY") {
			// Somebody else took the port.
			final = fmt.Errorf("%s answered with Server %q, not versitygw", endpoint, srv)
		}
		return true
	}) {
		return final
	}
	return fmt.Errorf("versitygw on %s did not answer within %v: %v", endpoint, timeout, err)
}

// checkOwnServer makes sure the versitygw answering on endpoint is the one
// serving s.Root. Packages' tests run in parallel, each starting servers with
// the same keys: when two pick the same free port, the second fails to bind
// and exits, but its readiness check may already have been answered by the
// first, and the test would then work in another test's buckets. A bucket
// made straight in s.Root is known only to the server that serves it.
func (s *S3) checkOwnServer(endpoint string) error {
	marker := "testenv-owner-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dir := filepath.Join(s.Root, marker)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer os.Remove(dir)
	ctx, cancel := opContext()
	defer cancel()
	if _, err := s.NewClient(endpoint).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(marker)}); err != nil {
		return fmt.Errorf("the server on %s does not serve %s (another test's server took the port?): %w", endpoint, s.Root, err)
	}
	return nil
}

// stopProcess sends SIGTERM, waits up to stopTimeout, then kills and waits.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(stopTimeout):
	}
	_ = cmd.Process.Kill()
	<-exited
}

// fileTail returns at most the last n bytes of the file at path.
func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "(" + err.Error() + ")"
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil {
		return "(" + err.Error() + ")"
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		return "...\n" + string(b)
	}
	return string(b)
}

// NewClient returns a path-style S3 client with the server's credentials and
// region, pointed at endpoint (s.Endpoint, or a Proxy's URL), then applies
// optFns, e.g. func(o *s3.Options) { o.Retryer = aws.NopRetryer{} } to see
// faults unretried. It uses the SDK's own BuildableClient, so it works with
// AWS_CA_BUNDLE set, and it reads no shared config or profile.
func (s *S3) NewClient(endpoint string, optFns ...func(*s3.Options)) *s3.Client {
	opts := s3.Options{
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		HTTPClient:   awshttp.NewBuildableClient(),

		DisableLogOutputChecksumValidationSkipped: true,
	}
	return s3.New(opts, optFns...)
}

// Env returns os.Environ() plus what a subprocess (the daemon) needs to reach
// the server through the SDK's default chain: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION. Inherited AWS_PROFILE,
// AWS_DEFAULT_PROFILE, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL(_S3), AWS_REGION,
// AWS_DEFAULT_REGION and credentials are removed; AWS_CA_BUNDLE is kept. The
// endpoint is not in it: pass s.Endpoint (or a Proxy's URL) explicitly.
func (s *S3) Env() []string {
	drop := map[string]bool{
		"AWS_PROFILE": true, "AWS_DEFAULT_PROFILE": true, "AWS_SESSION_TOKEN": true, "AWS_SECURITY_TOKEN": true,
		"AWS_ENDPOINT_URL": true, "AWS_ENDPOINT_URL_S3": true,
		"AWS_ACCESS_KEY_ID": true, "AWS_ACCESS_KEY": true, "AWS_SECRET_ACCESS_KEY": true, "AWS_SECRET_KEY": true,
		"AWS_REGION": true, "AWS_DEFAULT_REGION": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if drop[name] {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+s.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+s.SecretKey,
		"AWS_REGION="+s.Region,
	)
}

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// CreateBucket creates bucket through the S3 API.
func (s *S3) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("testenv: CreateBucket %s: %v", bucket, err)
	}
}

// Put uploads data as bucket/key through PutObject and returns the ETag as
// the server sent it (quoted, e.g. "\"5d41402abc4b2a76b9719d911017c592\"").
func (s *S3) Put(t testing.TB, bucket, key string, data []byte) (etag string) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	out, err := s.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		t.Fatalf("testenv: PutObject %s/%s: %v", bucket, key, err)
	}
	return aws.ToString(out.ETag)
}

// PutFile uploads the local file at path as bucket/key with one PutObject,
// streaming it from disk (the payload is sent UNSIGNED-PAYLOAD and without an
// SDK checksum, so the file is read once). Returns the ETag as Put does.
func (s *S3) PutFile(t testing.TB, bucket, key, path string) (etag string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("testenv: PutFile: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatalf("testenv: PutFile: %v", err)
	}
	ctx, cancel := opContext()
	defer cancel()
	out, err := s.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          f,
		ContentLength: aws.Int64(st.Size()),
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware), func(o *s3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	if err != nil {
		t.Fatalf("testenv: PutObject %s/%s from %s: %v", bucket, key, path, err)
	}
	return aws.ToString(out.ETag)
}

// rawPath is where the posix backend keeps bucket/key.
func (s *S3) rawPath(t testing.TB, bucket, key string) string {
	t.Helper()
	if bucket == "" || strings.Contains(bucket, "/") || bucket == "." || bucket == ".." {
		t.Fatalf("testenv: bad bucket name %q", bucket)
	}
	p := filepath.Join(s.Root, bucket, filepath.FromSlash(key))
	if !strings.HasPrefix(p, filepath.Join(s.Root, bucket)+string(filepath.Separator)) {
		t.Fatalf("testenv: key %q escapes bucket %q", key, bucket)
	}
	return p
}

// PutRaw writes data straight into the server's directory as bucket/key
// (creating parent directories; the bucket should exist, see CreateBucket).
// The server then serves an object that has no stored ETag. The file is
// written beside the root and renamed into place, so readers never see it
// half written. Its mtime (the object's Last-Modified, in whole seconds) is
// now; see SetModTime.
func (s *S3) PutRaw(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	p := s.rawPath(t, bucket, key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("testenv: PutRaw: %v", err)
	}
	f, err := os.CreateTemp(s.staging, "raw-*")
	if err != nil {
		t.Fatalf("testenv: PutRaw: %v", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		t.Fatalf("testenv: PutRaw %s/%s: %v", bucket, key, err)
	}
}

// SetModTime sets the mtime of the file behind bucket/key, i.e. the object's
// Last-Modified. Useful for objects without ETag, whose version is
// (size, Last-Modified) at one-second resolution.
func (s *S3) SetModTime(t testing.TB, bucket, key string, mtime time.Time) {
	t.Helper()
	if err := os.Chtimes(s.rawPath(t, bucket, key), mtime, mtime); err != nil {
		t.Fatalf("testenv: SetModTime: %v", err)
	}
}

// Delete deletes bucket/key through the S3 API.
func (s *S3) Delete(t testing.TB, bucket, key string) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	if _, err := s.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("testenv: DeleteObject %s/%s: %v", bucket, key, err)
	}
}
