package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"s3docs/internal/object"
)

// bodyTransport answers every request with body.
type bodyTransport struct{ body []byte }

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"application/xml"}},
		Body: io.NopCloser(bytes.NewReader(b.body)), ContentLength: int64(len(b.body)), Request: r}, nil
}

// sdkListing decodes body with the SDK's own decoder alone.
func sdkListing(body []byte) (listing, error) {
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://s3.test"), UsePathStyle: true,
		Credentials: aws.AnonymousCredentials{}, HTTPClient: &http.Client{Transport: bodyTransport{body}},
		RetryMaxAttempts: 1})
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("b")})
	if err != nil {
		return listing{}, err
	}
	return fromSDK(out), nil
}

// sameListing compares two listings, times by instant.
func sameListing(a, b listing) bool {
	if a.truncated != b.truncated || a.nextToken != b.nextToken || !reflect.DeepEqual(a.prefixes, b.prefixes) || len(a.objects) != len(b.objects) {
		return false
	}
	for i := range a.objects {
		x, y := a.objects[i], b.objects[i]
		if x.key != y.key || x.etag != y.etag || x.size != y.size || !x.modTime.Equal(y.modTime) {
			return false
		}
	}
	return true
}

// listingSeeds are answers as servers send them, and near misses.
func listingSeeds() []string {
	head := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`
	versity := head + `<Name>bench</Name><Prefix>smallbig/f05</Prefix><NextContinuationToken>smallbig/f050999.pdf</NextContinuationToken><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>` +
		`<Contents><LastModified>2026-12-03T08:09:34Z</LastModified><ChecksumAlgorithm></ChecksumAlgorithm><ChecksumType></ChecksumType><ETag></ETag><Key>smallbig/f050000.pdf</Key><Size>64</Size><StorageClass>STANDARD</StorageClass></Contents>` +
		`<Contents><LastModified>2026-12-03T08:09:34.123Z</LastModified><ETag>&quot;0a1b&quot;</ETag><Key>smallbig/a&amp;b &lt;c&gt; &#233;&#x10348; 文書.pdf</Key><Size>0</Size></Contents>` +
		`<CommonPrefixes><Prefix>smallbig/sub/</Prefix></CommonPrefixes></ListBucketResult>`
	aws := head + "\n  <Name>docs</Name>\n  <IsTruncated>false</IsTruncated>\n  <Contents>\n    <Key>a b\tc</Key>\n    <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n    <ETag>\"fba9dede5f27731c9771645a39863328\"</ETag>\n    <Size>434234</Size>\n    <StorageClass>STANDARD</StorageClass>\n  </Contents>\n  <CommonPrefixes><Prefix/></CommonPrefixes>\n  <Contents/>\n</ListBucketResult>\n"
	return []string{
		versity, aws,
		strings.Replace(versity, "<Key>", "<!-- c --><Key>", 1),
		strings.Replace(versity, "f050000", "f05\r\n0000", 1),
		strings.Replace(versity, "f050000", "f05&#13;0000", 1),
		strings.Replace(versity, "f050000", "f05<![CDATA[x]]>0000", 1),
		strings.Replace(versity, "f050000", "f05&nbsp;0000", 1),
		strings.Replace(versity, "f050000", "f05&#0;0000", 1),
		strings.Replace(versity, "f050000", "f05\x01\xff0000", 1),
		strings.Replace(versity, "<Size>64</Size>", "<Size></Size>", 1),
		strings.Replace(versity, "<Size>64</Size>", "<Size/>", 1),
		strings.Replace(versity, "<Size>64</Size>", "<size>64</size>", 1),
		strings.Replace(versity, "<Size>64</Size>", "<Size>64</size>", 1),
		strings.Replace(versity, "<Size>64</Size>", "<Size> 64</Size>", 1),
		strings.Replace(versity, "<Size>64</Size>", "", 1),
		strings.Replace(versity, "<IsTruncated>true", "<IsTruncated>1", 1),
		strings.Replace(versity, "<IsTruncated>true", "<IsTruncated>yes", 1),
		strings.Replace(versity, "<KeyCount>2", "<KeyCount>x", 1),
		strings.Replace(versity, "2026-12-03T08:09:34Z", "yesterday", 1),
		strings.Replace(versity, "<Key>", "<Owner><ID>x</ID></Owner><Key>", 1),
		strings.Replace(versity, "<Key>", "<Key a=\"1\">", 1),
		strings.Replace(versity, "<Key>", "<s3:Key>", 1),
		strings.Replace(versity, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1),
		strings.Replace(versity, "<Name>", "<Unknown><Deep>1</Deep></Unknown><Name>", 1),
		strings.Replace(versity, "</ListBucketResult>", "</ListBucketResult>trailing <junk", 1),
		strings.Replace(versity, "</ListBucketResult>", "", 1),
		strings.Replace(versity, "ListBucketResult", "listbucketresult", 2),
		"\ufeff" + versity,
		"",
		"<ListBucketResult/>",
		"not xml",
	}
}

// FuzzDecodeListing: whatever decodeListing takes, the SDK decodes to the
// same listing; what it leaves goes to the SDK, so the fast decoder never
// changes what an answer means, nor turns an answer the SDK refuses into a
// listing.
func FuzzDecodeListing(f *testing.F) {
	for _, s := range append(listingSeeds(), rtSeeds()...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeListing(body)
		if !ok {
			return
		}
		sdk, err := sdkListing(body)
		if err != nil {
			t.Fatalf("decodeListing took an answer the SDK refuses (%v):\n%q", err, body)
		}
		if !sameListing(fast, sdk) {
			t.Fatalf("decodeListing and the SDK differ:\nfast %+v\nsdk  %+v\nbody %q", fast, sdk, body)
		}
	})
}

// The answers servers send are decoded fast; the seeds that are not are
// the ones meant to fall back, and decode as the SDK decodes them.
func TestDecodeListingTakesCommonAnswers(t *testing.T) {
	seeds := listingSeeds()
	for i, s := range seeds[:2] {
		fast, ok := decodeListing([]byte(s))
		if !ok {
			t.Fatalf("seed %d: not decoded fast", i)
		}
		sdk, err := sdkListing([]byte(s))
		if err != nil || !sameListing(fast, sdk) {
			t.Fatalf("seed %d: fast %+v, sdk %+v (%v)", i, fast, sdk, err)
		}
	}
	fast, _ := decodeListing([]byte(seeds[0]))
	if got := fast.objects[1].key; got != "smallbig/a&b <c> é\U00010348 文書.pdf" {
		t.Fatalf("key %q", got)
	}
	if len(fast.objects) != 2 || fast.objects[0].size != 64 || !fast.truncated || fast.nextToken != "smallbig/f050999.pdf" ||
		!fast.objects[1].modTime.Equal(time.Date(2026, 12, 3, 8, 9, 34, 123e6, time.UTC)) || fast.objects[1].etag != `"0a1b"` {
		t.Fatalf("decoded %+v", fast)
	}
	aws, _ := decodeListing([]byte(seeds[1]))
	if len(aws.objects) != 2 || aws.objects[1].size != -1 || aws.objects[1].key != "" || len(aws.prefixes) != 1 {
		t.Fatalf("decoded %+v", aws)
	}
	for i, s := range seeds[2:] {
		if _, ok := decodeListing([]byte(s)); ok {
			if sdk, err := sdkListing([]byte(s)); err != nil {
				t.Errorf("seed %d: decoded fast, the SDK refuses it: %v", i+2, err)
			} else {
				fast, _ := decodeListing([]byte(s))
				if !sameListing(fast, sdk) {
					t.Errorf("seed %d: fast %+v, sdk %+v", i+2, fast, sdk)
				}
			}
		}
	}
}

// An answer the fast decoder leaves to the SDK lists the same through
// ListPage as the same answer in the plain shape.
func TestListPageFallsBackToTheSDK(t *testing.T) {
	plain := listPage([]string{"a&amp;b", "c"}, true, "t")
	fakeCredentials(t)
	odd := strings.Replace(plain, "<Contents>", "<!-- from a proxy --><Contents>", 1)
	if _, ok := decodeListing([]byte(odd)); ok {
		t.Fatal("the odd answer decodes fast: the test tests nothing")
	}
	var pages []object.Page
	for _, body := range []string{plain, odd} {
		srv, _ := hostileServer(t, func(int64) string { return body })
		s := storeAt(t, srv.URL)
		p, err := s.ListPage(context.Background(), object.ListRequest{})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, p)
	}
	if fmt.Sprint(pages[0]) != fmt.Sprint(pages[1]) || len(pages[0].Files) != 2 || pages[0].Files[0].Key != "a&b" {
		t.Fatalf("plain %+v, odd %+v", pages[0], pages[1])
	}
}
