package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"s3docs/internal/object"
)

// maxPageKeys is what S3 answers at most per page, and what a page may hold
// when the request set no MaxKeys.
const maxPageKeys = 1000

// maxPageBody bounds the body of one listing page. A page of 1,000 keys of
// the longest allowed length, XML-escaped, stays well below it; a server
// that sends more is not answering a listing.
const maxPageBody = 8 << 20

// ListPage makes one ListObjectsV2 request. It trusts nothing about the
// answer that would let a listing go on forever or grow without bound: a
// truncated page must carry a new continuation token, may not hold more
// entries than asked for, and its body is bounded. Those failures wrap
// object.ErrBadListing. The caller bounds the time (ctx) and the number of
// pages.
func (s *Store) ListPage(ctx context.Context, req object.ListRequest) (object.Page, error) {
	full := s.prefix + req.Prefix
	max := req.MaxKeys
	if max <= 0 || max > maxPageKeys {
		max = maxPageKeys
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(full),
		MaxKeys: aws.Int32(int32(max)),
	}
	if req.Delimiter {
		in.Delimiter = aws.String("/")
	}
	switch {
	case req.Token != "":
		in.ContinuationToken = aws.String(req.Token)
	case req.StartAfter != "":
		in.StartAfter = aws.String(s.prefix + req.StartAfter)
	}
	op := "list " + full
	var out *s3.ListObjectsV2Output
	err := s.do(ctx, KindList, &budget{}, s.maxAttempts, func(ctx context.Context) error {
		var err error
		out, err = s.client.ListObjectsV2(ctx, in, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
				sdk, ok := st.Deserialize.Get(sdkDecoderID)
				if !ok {
					return fmt.Errorf("no %s in the SDK's stack", sdkDecoderID)
				}
				if _, err := st.Deserialize.Swap(sdkDecoderID, &listDecoder{sdk: sdk, bufs: &s.listBufs}); err != nil {
					return err
				}
				return st.Deserialize.Add(limitBody{max: maxPageBody}, middleware.After)
			})
		})
		return err
	})
	if err != nil {
		return object.Page{}, s.wrap(err, op)
	}
	l, ok := out.ResultMetadata.Get(listingKey{}).(listing)
	if !ok {
		l = fromSDK(out)
	}
	var page object.Page
	if n := len(l.objects) + len(l.prefixes); n > max {
		return object.Page{}, fmt.Errorf("%s: %d entries in a page of at most %d: %w", op, n, max, object.ErrBadListing)
	}
	page.Truncated = l.truncated
	if page.Truncated {
		page.NextToken = l.nextToken
		switch page.NextToken {
		case "":
			return object.Page{}, fmt.Errorf("%s: truncated page without a continuation token: %w", op, object.ErrBadListing)
		case req.Token:
			return object.Page{}, fmt.Errorf("%s: the server repeated the continuation token: %w", op, object.ErrBadListing)
		}
	}
	// What is not under the prefix asked for is not ours (a server that
	// ignores the prefix): kept, a key outside the mount's prefix would
	// show up in the mount as if it were inside it.
	for _, cp := range l.prefixes {
		rel, ok := strings.CutPrefix(cp, full)
		if !ok {
			continue
		}
		page.Dirs = append(page.Dirs, strings.TrimSuffix(rel, "/"))
	}
	page.Files = make([]object.Version, 0, len(l.objects))
	for _, o := range l.objects {
		if !strings.HasPrefix(o.key, full) {
			continue
		}
		if err := checkETag(op, o.etag); err != nil {
			return object.Page{}, fmt.Errorf("%w: %w", err, object.ErrBadListing)
		}
		// An entry without a size is not taken as empty (it would read as
		// an empty file, without error): -1, which the file system skips.
		page.Files = append(page.Files, object.Version{
			Key:     strings.TrimPrefix(o.key, s.prefix),
			ETag:    quoteETag(o.etag),
			Size:    o.size,
			ModTime: o.modTime,
		})
	}
	return page, nil
}

// maxPooledBody: buffers that grew past it, for an outsized answer, are
// not kept for the next one. S3's pages of 1,000 keys are about 300 KB.
const maxPooledBody = 1 << 20

// sdkDecoderID names the SDK's decoder of an operation's answer.
const sdkDecoderID = "OperationDeserializer"

// listingKey holds, in the answer's metadata, the listing listDecoder
// decoded.
type listingKey struct{}

// listDecoder stands in the SDK's decoder of ListObjectsV2 answers: a
// successful answer is read whole and decoded by decodeListing; errors
// and what decodeListing does not take go to the SDK's decoder.
type listDecoder struct {
	sdk  middleware.DeserializeMiddleware
	bufs *sync.Pool // of *bytes.Buffer
}

func (*listDecoder) ID() string { return sdkDecoderID }

func (m *listDecoder) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 || resp.Body == nil {
		return m.sdk.HandleDeserialize(ctx, in, answered{out, md, err})
	}
	buf, _ := m.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = &bytes.Buffer{}
	}
	buf.Reset()
	if n := resp.ContentLength; n > 0 && n <= maxPageBody {
		buf.Grow(int(n) + bytes.MinRead) // read in place, without doubling
	}
	_, readErr := buf.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if readErr == nil {
		if l, ok := decodeListing(buf.Bytes()); ok {
			// The listing holds copies: the buffer can serve the next
			// answer, unless an outsized one made it big.
			if buf.Cap() <= maxPooledBody {
				m.bufs.Put(buf)
			}
			md.Set(listingKey{}, l)
			out.Result = &s3.ListObjectsV2Output{}
			return out, md, nil
		}
	}
	// The SDK reads the same bytes, and the same failure; the buffer is
	// its now, not the pool's.
	body := io.Reader(bytes.NewReader(buf.Bytes()))
	if readErr != nil {
		body = io.MultiReader(body, failingReader{readErr})
	}
	resp.Body = io.NopCloser(body)
	return m.sdk.HandleDeserialize(ctx, in, answered{out, md, nil})
}

// answered is the rest of the stack, which has answered already.
type answered struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
	err error
}

func (a answered) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return a.out, a.md, a.err
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// limitBody makes the response body of one request fail past max bytes,
// before the SDK's XML decoder reads it.
type limitBody struct{ max int64 }

func (limitBody) ID() string { return "s3docs.limitBody" }

func (m limitBody) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp.Body != nil {
		resp.Body = &limitedReader{ReadCloser: resp.Body, left: m.max}
	}
	return out, md, err
}

type limitedReader struct {
	io.ReadCloser
	left int64
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, fmt.Errorf("response body over %d bytes: %w", maxPageBody, object.ErrBadListing)
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.ReadCloser.Read(p)
	r.left -= int64(n)
	return n, err
}
