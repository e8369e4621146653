package s3

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
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// bodyClient answers every request with status and body.
type bodyClient struct {
	status int
	body   []byte
}

func (c bodyClient) Do(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: c.status, Header: http.Header{"Content-Type": {"application/xml"}},
		Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)), Request: req}, nil
}

// listedBy lists through a client whose server answers body, decoded by
// the fast path (fast) or by the SDK alone.
func listedBy(t testing.TB, status int, body []byte, fast bool) (*awss3.ListObjectsV2Output, error) {
	client := awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"), UsePathStyle: true,
		Credentials:      credentials.NewStaticCredentialsProvider("k", "s", ""),
		HTTPClient:       bodyClient{status, body},
		RetryMaxAttempts: 1,
	})
	var opts []func(*awss3.Options)
	if fast {
		opts = append(opts, fastListDecoding)
	}
	return client.ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: aws.String("b")}, opts...)
}

// listFields is what List and its paginator read of a listing.
type listFields struct {
	Truncated, KeyCount, Token, NextToken string
	Objects                               []string
}

func fieldsOf(o *awss3.ListObjectsV2Output) listFields {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *p)
	}
	f := listFields{Token: s(o.ContinuationToken), NextToken: s(o.NextContinuationToken), Truncated: "<nil>", KeyCount: "<nil>"}
	if o.IsTruncated != nil {
		f.Truncated = fmt.Sprint(*o.IsTruncated)
	}
	if o.KeyCount != nil {
		f.KeyCount = fmt.Sprint(*o.KeyCount)
	}
	for _, c := range o.Contents {
		size, mod := "<nil>", "<nil>"
		if c.Size != nil {
			size = fmt.Sprint(*c.Size)
		}
		if c.LastModified != nil {
			mod = c.LastModified.UTC().Format(time.RFC3339Nano)
		}
		f.Objects = append(f.Objects, s(c.Key)+" "+size+" "+mod)
	}
	return f
}

// sameAsSDK fails t unless the fast path decodes body as the SDK does:
// the same fields, or the same failure.
func sameAsSDK(t testing.TB, body []byte) {
	t.Helper()
	want, werr := listedBy(t, 200, body, false)
	got, gerr := listedBy(t, 200, body, true)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("body %q: the SDK's error %v, the fast path's %v", body, werr, gerr)
	}
	if werr != nil {
		return
	}
	if w, g := fieldsOf(want), fieldsOf(got); !reflect.DeepEqual(w, g) {
		t.Fatalf("body %q:\nSDK  %+v\nfast %+v", body, w, g)
	}
}

const (
	versityList = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>history</Name><Prefix>repo/data/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>repo/data/00/00ab</Key><LastModified>2026-12-07T07:23:19.123Z</LastModified><ETag>&#34;0f343b0931126a20f133d67c2b018a3b&#34;</ETag><Size>5042</Size><StorageClass>STANDARD</StorageClass></Contents><Contents><Key>repo/data/ff/ffcd</Key><LastModified>2026-12-07T07:23:20Z</LastModified><Size>17418</Size></Contents></ListBucketResult>`
	awsList = `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix/>
  <ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwN=</NextContinuationToken>
  <KeyCount>3</KeyCount>
  <MaxKeys>3</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#x41;&#66;</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>"fba9dede5f27731c9771645a39863328"</ETag>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
    <Size>434234</Size>
    <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>me</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents><Key> spaced </Key><Size>0</Size><LastModified>2009-10-12T17:50:30Z</LastModified><Unknown><Deep a="1">x<y/></Deep></Unknown></Contents>
  <Contents/>
  <CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes>
  <Future><Nested>text</Nested></Future>
</ListBucketResult>`
)

// Bodies the fast path decodes, and bodies it hands to the SDK (each
// different from an accepted one in one way).
var (
	acceptedLists = []string{
		versityList,
		awsList,
		`<ListBucketResult></ListBucketResult>`,
		`<ListBucketResult xmlns='x' xmlns:a="y"><IsTruncated>1</IsTruncated><KeyCount>4294967297</KeyCount><Contents><Key></Key><Size>-1</Size></Contents></ListBucketResult>`,
		`<ListBucketResult><contents><KEY>k</KEY><size>1</size></contents><istruncated>TRUE</istruncated></ListBucketResult >`,
		`<?xml version="1.0"?><ListBucketResult><Contents><Key>a]]b&#10;c	d</Key></Contents></ListBucketResult>trailing`,
	}
	refusedLists = []string{
		``,
		`<ListBucketResult><!-- c --></ListBucketResult>`,
		`<ListBucketResult><Contents><Key><![CDATA[k]]></Key></Contents></ListBucketResult>`,
		"<ListBucketResult><Contents><Key>a\r\nb</Key></Contents></ListBucketResult>",
		`<ListBucketResult><Contents><Key>é</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>a]]>b</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>&#233;</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>&#X41;</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>&nbsp;</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>a & b</Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Size>12a</Size></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Size></Size></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><LastModified>yesterday</LastModified></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>k<b/></Key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><RestoreStatus><IsRestoreInProgress>maybe</IsRestoreInProgress></RestoreStatus></Contents></ListBucketResult>`,
		`<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>`,
		`<ListBucketResult><KeyCount>many</KeyCount></ListBucketResult>`,
		`<ListBucketResult><s3:Contents><Key>k</Key></s3:Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>k</key></Contents></ListBucketResult>`,
		`<ListBucketResult><Contents><Key>k</Key>`,
		`<ListBucketResult>text<Contents/></ListBucketResult>`,
		`<ListBucketResult a="<"></ListBucketResult>`,
		`<ListBucketResult a=b></ListBucketResult>`,
		`<ListAllMyBucketsResult></ListAllMyBucketsResult>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><ListBucketResult></ListBucketResult>`,
		` <?xml version="1.0"?><ListBucketResult></ListBucketResult>`,
		`<!DOCTYPE x><ListBucketResult></ListBucketResult>`,
		`<ListBucketResult/>`,
	}
)

func TestListDecodeMatchesSDK(t *testing.T) {
	for _, body := range acceptedLists {
		if _, ok := decodeListV2([]byte(body)); !ok {
			t.Errorf("the fast path refuses %q", body)
		}
		sameAsSDK(t, []byte(body))
	}
	for _, body := range refusedLists {
		if _, ok := decodeListV2([]byte(body)); ok {
			t.Errorf("the fast path accepts %q", body)
		}
		sameAsSDK(t, []byte(body)) // through the SDK's decoder
	}
	got, err := listedBy(t, 200, []byte(awsList), true)
	if err != nil {
		t.Fatal(err)
	}
	if k := aws.ToString(got.Contents[0].Key); k != `a&b <c> "d" 'e' AB` {
		t.Fatalf("key %q", k)
	}
}

// An error status reaches the SDK's decoder: its error, not a listing.
func TestListDecodeErrorStatus(t *testing.T) {
	body := []byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>`)
	_, err := listedBy(t, 404, body, true)
	if err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("got %v, want the SDK's NoSuchBucket", err)
	}
	// a 200 answer cut short is the SDK's decoding error, not a short listing
	if _, err := listedBy(t, 200, []byte(versityList[:len(versityList)-40]), true); err == nil {
		t.Fatal("a listing cut short decoded")
	}
}

// A page larger than the fast path reads is decoded by the SDK.
func TestListDecodeLargeBody(t *testing.T) {
	var b strings.Builder
	b.WriteString(`<ListBucketResult><IsTruncated>false</IsTruncated>`)
	for i := 0; b.Len() <= maxFastListBody; i++ {
		fmt.Fprintf(&b, `<Contents><Key>k%07d</Key><Size>%d</Size><LastModified>2026-12-07T07:23:19Z</LastModified><ETag>%0200d</ETag></Contents>`, i, i, 0)
	}
	b.WriteString(`</ListBucketResult>`)
	before := listFallbacks.Load()
	sameAsSDK(t, []byte(b.String()))
	if listFallbacks.Load() == before {
		t.Fatal("a body over the bound did not go to the SDK")
	}
}

func FuzzListDecode(f *testing.F) {
	for _, b := range append(append([]string{}, acceptedLists...), refusedLists...) {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, ok := decodeListV2(body); ok {
			sameAsSDK(t, body)
		}
	})
}
