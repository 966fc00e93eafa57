// Package s3store is the only importer of the AWS SDK. It lists a bucket
// prefix one page at a time, heads objects and serves ranged GETs pinned to
// one object version, retrying transient failures, including bodies cut short.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"s3docs/internal/object"
	"s3docs/internal/pacer"
)

// Options configure a Store.
type Options struct {
	Bucket string
	// Prefix is "" or ends with "/"; keys handed out and taken are relative to it.
	Prefix         string
	EndpointURL    string // "" means the SDK's own resolution (AWS_ENDPOINT_URL, config files)
	Region         string // "" means the SDK chain, falling back to us-east-1
	ForcePathStyle bool
	// MaxConns bounds connections to the endpoint; it should be at least the
	// number of concurrent GETs so that none waits for a connection.
	MaxConns int
	// MaxAttempts is how many times a request may fail (a 5xx other
	// than throttling, no answer) before it is given up; a range's GETs
	// and resumes share them (retry.go). Throttled answers do not count.
	// Defaults to defaultMaxAttempts.
	MaxAttempts int
	// StallTimeout is how long a response body may send nothing before the
	// GET is abandoned and resumed. Defaults to defaultStallTimeout.
	StallTimeout time.Duration
	// FailureBackoff and ThrottleBackoff are the first waits after a
	// failure and after a throttled answer (retry.go), at most; 0 means
	// the defaults. ThrottleBackoff's cap is eight times it.
	FailureBackoff, ThrottleBackoff time.Duration
	// Pacing tunes the daemon's pacer of requests; the zero value is
	// what the daemon uses.
	Pacing pacer.Config
	Logger *slog.Logger
	// OnRequest, if set, is told of every request sent to the store: its
	// kind (KindGet, KindHead, KindList) and outcome (OutcomeOK, ...).
	// OnRetry is told of every retry with its reason (RetryThrottled,
	// ...). Both are called concurrently.
	OnRequest func(kind, outcome string)
	OnRetry   func(reason string)
}

// Store talks to one bucket prefix.
type Store struct {
	client      *s3.Client
	bucket      string
	prefix      string
	endpoint    string
	maxAttempts int
	stall       time.Duration
	log         *slog.Logger
	listBufs    sync.Pool // of *bytes.Buffer: listing answers being decoded
	// pace is the daemon's one pacer: every request waits for its turn
	// there (retry.go).
	pace                      *pacer.Pacer
	failBase                  time.Duration
	throttleBase, throttleMax time.Duration
	onRequest                 func(kind, outcome string)
	onRetry                   func(reason string)
}

// The store's limits of one request (its retries are in retry.go). None of
// it is a deadline: every request runs under its caller's context, which
// is what bounds a read in time.
const (
	// defaultMaxAttempts is how many times a request, or a range with its
	// resumes, may fail before it is given up.
	defaultMaxAttempts = 5
	// dialTimeout bounds connecting to the endpoint.
	dialTimeout = 5 * time.Second
	// responseHeaderTimeout bounds the wait for a response's headers: a
	// server that accepts the connection and never answers costs one
	// attempt of this long.
	responseHeaderTimeout = 30 * time.Second
	// maxResponseHeader bounds a response's headers. S3's are a few KB
	// (user metadata is at most 2 KB).
	maxResponseHeader = 256 << 10
	// defaultStallTimeout: a body silent this long is abandoned and the
	// rest of the range asked for again.
	defaultStallTimeout = 20 * time.Second
)

// New builds a client from the SDK's default credential chain. It does not
// contact the server; Check does.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = defaultMaxAttempts
	}
	if o.FailureBackoff <= 0 {
		o.FailureBackoff = defaultFailureBackoff
	}
	throttleMax := maxThrottleBackoff
	if o.ThrottleBackoff <= 0 {
		o.ThrottleBackoff = defaultThrottleBackoff
	} else {
		throttleMax = 8 * o.ThrottleBackoff
	}
	if o.OnRequest == nil {
		o.OnRequest = func(string, string) {}
	}
	if o.OnRetry == nil {
		o.OnRetry = func(string) {}
	}
	if o.MaxConns <= 0 {
		// Its default is mountopts's --max-concurrent-gets, passed down.
		return nil, errors.New("s3store: MaxConns must be positive")
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = defaultStallTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// The SDK only accepts its own BuildableClient when AWS_CA_BUNDLE is set,
	// so the transport is tuned through it rather than replaced.
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = o.MaxConns * 2
			t.MaxIdleConnsPerHost = o.MaxConns * 2
			t.ResponseHeaderTimeout = responseHeaderTimeout
			// Go takes 10 MB of headers by default, held while parsed: a
			// server could make each request in flight cost that.
			t.MaxResponseHeaderBytes = maxResponseHeader
			// Ranged PDF bytes do not compress; asking for gzip only costs CPU.
			t.DisableCompression = true
		})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		// The SDK's own warnings (a body it could not drain, which our
		// bounds on bodies cause on purpose) go to our log at debug level,
		// not as unstructured lines on stderr, past --log-file: the
		// failure itself is logged once by whoever sees it.
		config.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			o.Logger.Debug("aws sdk: "+fmt.Sprintf(format, v...), "class", string(c))
		})),
		// The SDK sends each request once: retries are ours (retry.go),
		// one layer that tells throttling from failures and paces every
		// request of the daemon together.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.EndpointURL != "" {
			so.BaseEndpoint = aws.String(o.EndpointURL)
		}
		so.UsePathStyle = o.ForcePathStyle
		// Checksums of whole objects do not apply to ranged GETs; the cache
		// keeps its own crc32c of every chunk.
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.APIOptions = append(so.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(limitErrorBody{}, middleware.After)
		})
	})
	endpoint := o.EndpointURL
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	// The endpoint goes into messages and logs: never a password in it.
	if u, err := url.Parse(endpoint); err == nil && u.User != nil {
		endpoint = u.Redacted()
	}
	if endpoint == "" {
		endpoint = "AWS S3 (" + cfg.Region + ")"
	}
	return &Store{
		client:       client,
		bucket:       o.Bucket,
		prefix:       o.Prefix,
		endpoint:     endpoint,
		maxAttempts:  o.MaxAttempts,
		stall:        o.StallTimeout,
		log:          o.Logger,
		pace:         pacer.New(o.Pacing, o.Logger),
		failBase:     o.FailureBackoff,
		throttleBase: o.ThrottleBackoff,
		throttleMax:  throttleMax,
		onRequest:    o.OnRequest,
		onRetry:      o.OnRetry,
	}, nil
}

// Close stops the pacer's timer.
func (s *Store) Close() { s.pace.Close() }

// AllowedRate is the rate of requests the daemon allows itself now, per
// second: +Inf while the store does not throttle.
func (s *Store) AllowedRate() float64 { return s.pace.Rate() }

// Throttled says whether the store throttles now (requests are paced).
func (s *Store) Throttled() bool { return !math.IsInf(s.pace.Rate(), 1) }

// Endpoint names the server for messages.
func (s *Store) Endpoint() string { return s.endpoint }

// Check makes one cheap request and turns the usual setup mistakes into one
// readable sentence: wrong bucket, wrong credentials, unreachable server.
// empty says that nothing is under the prefix yet (the caller says so once
// the mount is up: a warning before a setup error would make its one line
// two).
//
// A failure is not tried again (the operator is waiting for the verdict),
// and each attempt has checkAttemptTimeout; throttled answers are, until
// ctx ends: a fleet that restarts at once must not fail to mount because
// the store asked it to slow down.
func (s *Store) Check(ctx context.Context) (empty bool, err error) {
	var out *s3.ListObjectsV2Output
	err = s.do(ctx, KindList, &budget{}, 1, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, checkAttemptTimeout)
		defer cancel()
		var err error
		out, err = s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket:  aws.String(s.bucket),
			Prefix:  aws.String(s.prefix),
			MaxKeys: aws.Int32(1),
		}, func(o *s3.Options) {
			// Bounded like every listing page (ListPage): an endless answer
			// would be decoded into memory for the whole of ctx.
			o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
				return st.Deserialize.Add(limitBody{max: maxPageBody}, middleware.After)
			})
		})
		return err
	})
	if err == nil {
		// A web server that is not S3 (a console, a load balancer's page)
		// answers 200, and the SDK decodes its HTML as an empty listing;
		// every listing names its bucket.
		if aws.ToString(out.Name) == "" {
			return false, fmt.Errorf("%s does not answer as S3: its answer to a listing of bucket %q is not a listing", s.endpoint, s.bucket)
		}
		if len(out.Contents) == 0 && len(out.CommonPrefixes) == 0 {
			return true, s.checkNotAnObject(ctx)
		}
		return false, nil
	}
	code := errorCode(err)
	status := httpStatus(err)
	switch {
	case code == "NoSuchBucket" || (status == http.StatusNotFound && code == ""):
		return false, fmt.Errorf("bucket %q does not exist at %s", s.bucket, s.endpoint)
	case isCredentialsCode(code):
		return false, fmt.Errorf("wrong credentials for %s (%s)", s.endpoint, code)
	case code == "AccessDenied" || status == http.StatusForbidden:
		return false, fmt.Errorf("access denied to bucket %q at %s", s.bucket, s.endpoint)
	case code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || code == "IllegalLocationConstraintException":
		// The server's own message names the region it expects.
		return false, fmt.Errorf("wrong region for bucket %q at %s (--region): %s", s.bucket, s.endpoint, errorMessage(err, code))
	case isNoCredentials(err):
		return false, fmt.Errorf("no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
	case ctx.Err() != nil || isNetError(err):
		return false, fmt.Errorf("cannot reach S3 endpoint %s: %s", s.endpoint, rootCause(err))
	}
	return false, fmt.Errorf("S3 endpoint %s: %w", s.endpoint, err)
}

// checkAttemptTimeout bounds one attempt of Check: a server that accepts
// connections and never answers is reported after it.
const checkAttemptTimeout = 5 * time.Second

// Head returns the current version of key.
func (s *Store) Head(ctx context.Context, key string) (object.Version, error) {
	var out *s3.HeadObjectOutput
	err := s.do(ctx, KindHead, &budget{}, s.maxAttempts, func(ctx context.Context) error {
		var err error
		out, err = s.client.HeadObject(ctx, &s3.HeadObjectInput{
			Bucket: aws.String(s.bucket),
			Key:    aws.String(s.prefix + key),
		})
		return err
	})
	if err != nil {
		return object.Version{}, s.wrap(err, "head "+key)
	}
	if err := checkETag("head "+key, aws.ToString(out.ETag)); err != nil {
		return object.Version{}, err
	}
	if out.ContentLength == nil {
		// Taken as 0, the object would read as an empty file, without error.
		return object.Version{}, fmt.Errorf("head %s: the server did not say the object's size (no Content-Length)", key)
	}
	return object.Version{
		Key:     key,
		ETag:    quoteETag(aws.ToString(out.ETag)),
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// maxETag bounds an ETag. S3's are an MD5 in hex, quoted, with a part count
// for multipart uploads (under 50 bytes); the daemon keeps one per file it
// knows (8,192 nodes, the metadata cache), so a server's longer ones are
// refused rather than kept.
const maxETag = 1024

// checkETag refuses an ETag longer than maxETag.
func checkETag(op, etag string) error {
	if len(etag) > maxETag {
		return fmt.Errorf("%s: an ETag of %d bytes (at most %d)", op, len(etag), maxETag)
	}
	return nil
}

// checkNotAnObject refuses a prefix that is empty because it names an
// object, not a prefix (s3://docs/brief.pdf): its tree would be empty.
func (s *Store) checkNotAnObject(ctx context.Context) error {
	name := strings.TrimSuffix(s.prefix, "/")
	if name == "" {
		return nil
	}
	err := s.do(ctx, KindHead, &budget{}, 1, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, checkAttemptTimeout)
		defer cancel()
		_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(name)})
		return err
	})
	if err == nil {
		return fmt.Errorf("s3://%s/%s is an object, not a prefix: mount the prefix that holds it", s.bucket, name)
	}
	return nil
}

// quoteETag gives an ETag the quotes HTTP puts around it (RFC 9110
// 8.8.3). Some stores (NetApp ONTAP, some Ceph versions) list ETags
// without them while their headers have them: unquoted, one version would
// be two, and every GET of a listed version would look like a change. An
// ETag quoted already, as S3 sends it, or weak, is kept as it is, so the
// cache's names for it do not change.
func quoteETag(etag string) string {
	if etag == "" || strings.HasPrefix(etag, "W/") || (len(etag) >= 2 && strings.HasPrefix(etag, `"`) && strings.HasSuffix(etag, `"`)) {
		return etag
	}
	return `"` + etag + `"`
}

// wrap attaches the operation to err and maps the S3 answers the file system
// cares about onto object's sentinel errors.
func (s *Store) wrap(err error, op string) error {
	code := errorCode(err)
	switch {
	case code == "PreconditionFailed" || httpStatus(err) == http.StatusPreconditionFailed:
		return fmt.Errorf("%s: %w", op, object.ErrChanged)
	case isCredentialsCode(code) || code == "AccessDenied" || httpStatus(err) == http.StatusForbidden:
		return fmt.Errorf("%s: %w (%s)", op, object.ErrDenied, code)
	case code == "NoSuchKey" || code == "NoSuchBucket" || code == "NotFound" || httpStatus(err) == http.StatusNotFound:
		return fmt.Errorf("%s: %w (%s)", op, object.ErrNotFound, code)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isCredentialsCode: the server does not accept our credentials. versitygw
// answers an unknown key id with 404 XAdminUserNotFound, which must not read
// as a missing object.
func isCredentialsCode(code string) bool {
	switch code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "XAdminUserNotFound":
		return true
	}
	return false
}

func errorCode(err error) string {
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// errorMessage is the server's message of an S3 error, or its code.
func errorMessage(err error, code string) string {
	var api interface{ ErrorMessage() string }
	if errors.As(err, &api) && api.ErrorMessage() != "" {
		return api.ErrorMessage()
	}
	return code
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne)
}

func isNoCredentials(err error) bool {
	return strings.Contains(err.Error(), "failed to retrieve credentials") ||
		strings.Contains(err.Error(), "no EC2 IMDS role found")
}

// rootCause strips the SDK's layers of "operation error ... https response
// error ..." down to the network error, which is what a user can act on.
func rootCause(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	return err.Error()
}

// maxErrorBody bounds the body of an error answer. The SDK reads it whole
// into memory before decoding it, so a server that answers an error with an
// endless body would grow the daemon without bound (for as long as the
// read's deadline, at the speed of the network); S3's error documents are
// a few hundred bytes.
const maxErrorBody = 1 << 20

// limitErrorBody makes the body of an error answer (status 300 and up) fail
// past maxErrorBody, before the SDK reads it. Bodies of answers that carry
// data are left alone.
type limitErrorBody struct{}

func (limitErrorBody) ID() string { return "s3docs.limitErrorBody" }

func (limitErrorBody) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp.Body != nil && resp.StatusCode >= 300 {
		resp.Body = &errorBodyReader{ReadCloser: resp.Body, left: maxErrorBody}
	}
	return out, md, err
}

type errorBodyReader struct {
	io.ReadCloser
	left int64
}

func (r *errorBodyReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, fmt.Errorf("error answer's body over %d bytes", maxErrorBody)
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.ReadCloser.Read(p)
	r.left -= int64(n)
	return n, err
}
