package s3store

import (
	"context"
	"fmt"
	"io"
	"strings"

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
	out, err := s.client.ListObjectsV2(ctx, in, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(limitBody{max: maxPageBody}, middleware.After)
		})
	})
	if err != nil {
		return object.Page{}, s.wrap(err, op)
	}
	var page object.Page
	if n := len(out.Contents) + len(out.CommonPrefixes); n > max {
		return object.Page{}, fmt.Errorf("%s: %d entries in a page of at most %d: %w", op, n, max, object.ErrBadListing)
	}
	page.Truncated = aws.ToBool(out.IsTruncated)
	if page.Truncated {
		page.NextToken = aws.ToString(out.NextContinuationToken)
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
	for _, cp := range out.CommonPrefixes {
		rel, ok := strings.CutPrefix(aws.ToString(cp.Prefix), full)
		if !ok {
			continue
		}
		page.Dirs = append(page.Dirs, strings.TrimSuffix(rel, "/"))
	}
	for _, o := range out.Contents {
		if !strings.HasPrefix(aws.ToString(o.Key), full) {
			continue
		}
		if err := checkETag(op, aws.ToString(o.ETag)); err != nil {
			return object.Page{}, fmt.Errorf("%w: %w", err, object.ErrBadListing)
		}
		// An entry without a size is not taken as empty (it would read as
		// an empty file, without error): -1, which the file system skips.
		size := int64(-1)
		if o.Size != nil {
			size = *o.Size
		}
		page.Files = append(page.Files, object.Version{
			Key:     strings.TrimPrefix(aws.ToString(o.Key), s.prefix),
			ETag:    quoteETag(aws.ToString(o.ETag)),
			Size:    size,
			ModTime: aws.ToTime(o.LastModified),
		})
	}
	return page, nil
}

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
