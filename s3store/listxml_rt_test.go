package s3store

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"s3docs/internal/object"
)

// rtSeeds are answers found to break the contract of decodeListing (it
// took them, the SDK refused them or decoded them otherwise), and near
// misses of them.
func rtSeeds() []string {
	body := `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>false</IsTruncated><Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>`
	decl := func(d string) string { return "<?xml " + d + "?>" + body }
	in := func(x string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` + x + "</ListBucketResult>"
	}
	return []string{
		// encoding/xml finds "encoding=" and "version=" anywhere in the
		// declaration, inside another pseudo-attribute's value too.
		decl(`version="1.0" standalone="encoding='latin1'"`),
		decl(`standalone='version="1.1"' version="1.0"`),
		decl(`standalone="yes"encoding="latin1"`),
		decl(`version="1.0"standalone="version='2.0'"`),
		decl(`version="1.0" standalone="encoding=latin1"`),
		decl(`version="1.0" encoding="utf-8" standalone="yes"`),
		decl("version=\"1.0\"\u00a0encoding=\"utf-8\""),
		decl("version=\"1.0\"\u0085standalone=\"encoding='x'\""),
		// Near misses inside the root that held.
		in("<Contents><Key>a&#xD800;b</Key></Contents>"),
		in("<Contents><Key>a&#13;b&#x0000041;</Key></Contents>"),
		in("<Contents><Key>]&#93;>]]&gt;\ufffd\U0010ffff</Key></Contents>"),
		in("<Contents><Key>\ufffe</Key></Contents>"),
		in("<Contents ><Key >a</Key ><ETag\n/><Size\t>+64</Size\n></Contents>"),
		in("<Contents><Size>-1</Size><Size>9223372036854775807</Size></Contents>"),
		in("<Contents><Size>9223372036854775808</Size></Contents>"),
		in("<KeyCount>99999999999</KeyCount><MaxKeys>-0</MaxKeys>"),
		in("<Contents><LastModified>2026-12-03T08:09:34+02:00</LastModified></Contents>"),
		in("<Contents><LastModified>2026-12-03T08:09:34.123456789012Z</LastModified></Contents>"),
		in("<isTRUNCATED>TRUE</isTRUNCATED><nextcontinuationtoken>t</nextcontinuationtoken><KEY>x</KEY>"),
		in("<Contents><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumAlgorithm/><Key.2>x</Key.2><_x-1>y</_x-1></Contents>"),
		in("<Contents><Owner/></Contents>"),
		in("<Contents><RestoreStatus></RestoreStatus></Contents>"),
		in("<CommonPrefixes><Prefix>a</Prefix><Prefix>b</Prefix><X/></CommonPrefixes><CommonPrefixes/>"),
		in("<Contents><Key>a</Key><Key/></Contents><IsTruncated>true</IsTruncated><IsTruncated>0</IsTruncated>"),
		in("<Contents><Key>a</Key></Contents>\n\t "),
		`<ListBucketResult xmlns="" a=">" b-c.d="'x'"><Contents><Key>a</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>a</Key></contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult></ListBucketResult><x`,
	}
}

func TestDecodeListingRedTeam(t *testing.T) {
	for i, s := range rtSeeds() {
		fast, ok := decodeListing([]byte(s))
		t.Logf("rt seed %d: decoded fast: %v", i, ok)
		if !ok {
			continue
		}
		sdk, err := sdkListing([]byte(s))
		if err != nil {
			t.Errorf("rt seed %d: decoded fast, the SDK refuses it: %v\n%q", i, err, s)
			continue
		}
		if !sameListing(fast, sdk) {
			t.Errorf("rt seed %d: fast %+v, sdk %+v\n%q", i, fast, sdk, s)
		}
	}
	if _, ok := decodeListing([]byte(rtSeeds()[5])); !ok {
		t.Error("a plain declaration is not decoded fast")
	}
}

// listServer answers the n-th request with answer(w, n).
func listServer(t *testing.T, answer func(w http.ResponseWriter, n int64)) (*Store, *atomic.Int64) {
	t.Helper()
	fakeCredentials(t)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, calls.Add(1))
	}))
	t.Cleanup(srv.Close)
	s, err := New(context.Background(), Options{Bucket: "docs", EndpointURL: srv.URL, Region: "us-east-1", ForcePathStyle: true, MaxConns: 4, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	return s, &calls
}

// The swapped decoder keeps the SDK's retries (a 503, then the answer),
// and a body cut before its end is an error as it was with the SDK's
// decoder alone (which does not retry it either), never a short listing.
func TestListPageRetriesAroundTheFastDecoder(t *testing.T) {
	plain := listPage([]string{"a", "b"}, true, "next")
	s, calls := listServer(t, func(w http.ResponseWriter, n int64) {
		if n == 1 {
			w.WriteHeader(503)
			fmt.Fprint(w, `<Error><Code>SlowDown</Code></Error>`)
			return
		}
		fmt.Fprint(w, plain)
	})
	p, err := s.ListPage(context.Background(), object.ListRequest{})
	if err != nil || len(p.Files) != 2 || p.Files[0].Key != "a" || p.NextToken != "next" {
		t.Fatalf("%+v, %v", p, err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	for _, cut := range []int{len(plain) / 2, len(plain) - 1} {
		s, _ = listServer(t, func(w http.ResponseWriter, n int64) {
			// Content-Length promises more than is sent.
			w.Header().Set("Content-Length", strconv.Itoa(len(plain)))
			w.WriteHeader(200)
			fmt.Fprint(w, plain[:cut])
		})
		if p, err := s.ListPage(context.Background(), object.ListRequest{}); err == nil {
			t.Fatalf("a body cut at %d of %d listed as %+v", cut, len(plain), p)
		}
	}
	// An answer cut after its root closed lists as the SDK lists it.
	s, _ = listServer(t, func(w http.ResponseWriter, n int64) {
		w.Header().Set("Content-Length", strconv.Itoa(len(plain)+100))
		w.WriteHeader(200)
		fmt.Fprint(w, plain+"\n")
	})
	p, err = s.ListPage(context.Background(), object.ListRequest{})
	if err != nil || len(p.Files) != 2 {
		t.Fatalf("cut after the root: %+v, %v", p, err)
	}
	// A 200 whose body is an S3 error is an error, not an empty listing.
	s, _ = listServer(t, func(w http.ResponseWriter, n int64) {
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>x</Message></Error>`)
	})
	if p, err := s.ListPage(context.Background(), object.ListRequest{}); err == nil {
		t.Fatalf("an error in a 200 listed as %+v", p)
	}
	// A declaration the SDK refuses is refused through ListPage too.
	s, _ = listServer(t, func(w http.ResponseWriter, n int64) { fmt.Fprint(w, rtSeeds()[0]) })
	if p, err := s.ListPage(context.Background(), object.ListRequest{}); err == nil {
		t.Fatalf("a latin1 declaration listed as %+v", p)
	}
}

// Decoded strings are copies: the pooled buffer is reused by the next
// page, and the first page's keys are unchanged.
func TestListPageKeysOutliveThePool(t *testing.T) {
	s, _ := listServer(t, func(w http.ResponseWriter, n int64) {
		keys := []string{"aaaa", "bbbb"}
		if n > 1 {
			keys = []string{"zzzz", "yyyy"}
		}
		fmt.Fprint(w, listPage(keys, false, ""))
	})
	first, err := s.ListPage(context.Background(), object.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := s.ListPage(context.Background(), object.ListRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if first.Files[0].Key != "aaaa" || first.Files[1].Key != "bbbb" || first.Files[0].ETag != `"e"` {
		t.Fatalf("first page changed: %+v", first)
	}
}
