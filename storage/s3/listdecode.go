package s3

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithytime "github.com/aws/smithy-go/time"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK decodes a listing through encoding/xml, about 11 µs of CPU an
// object: a backup's check of the 200 packs it depends on spent 2.5 ms
// decoding one listing of data/, as much as versitygw took to produce it.
// fastListDecoder takes the SDK's place for a successful ListObjectsV2
// whose body is in the plain form S3 servers write (decodeListV2), and
// hands anything else (an error, a body it does not accept) to the SDK's
// own decoder, byte for byte as received: what the fast path accepts, the
// SDK reads the same way (TestListDecodeMatchesSDK, FuzzListDecode).
//
// It fills only the fields List reads: each object's Key, Size and
// LastModified, IsTruncated, KeyCount, ContinuationToken and
// NextContinuationToken.

// fastListDecoding is a per-call option of ListObjectsV2.
func fastListDecoding(o *awss3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		const id = "OperationDeserializer"
		sdk, ok := stack.Deserialize.Get(id)
		if !ok {
			return nil // an SDK that names it otherwise decodes on its own
		}
		_, err := stack.Deserialize.Swap(id, &fastListDecoder{sdk: sdk})
		return err
	})
}

// maxFastListBody bounds what the fast path reads into memory: a page of
// 1,000 keys is about 300 KB; the rest of a larger body goes to the SDK.
const maxFastListBody = 8 << 20

// listFallbacks counts the listings handed to the SDK's decoder.
var listFallbacks atomic.Int64

type fastListDecoder struct {
	sdk middleware.DeserializeMiddleware
}

func (*fastListDecoder) ID() string { return "OperationDeserializer" }

// replayed hands the SDK's decoder the response already received.
type replayed struct {
	out      middleware.DeserializeOutput
	metadata middleware.Metadata
	err      error
}

func (r replayed) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return r.out, r.metadata, r.err
}

// failingReader returns err once the bytes before it are read.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func (m *fastListDecoder) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, metadata, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 || resp.Body == nil {
		return m.sdk.HandleDeserialize(ctx, in, replayed{out, metadata, err})
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxFastListBody+1))
	if rerr == nil && len(body) <= maxFastListBody {
		if result, ok := decodeListV2(body); ok {
			resp.Body.Close()
			out.Result = result
			return out, metadata, nil
		}
	}
	listFallbacks.Add(1)
	rest := io.Reader(resp.Body)
	if rerr != nil {
		rest = failingReader{rerr}
	}
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(body), rest), resp.Body}
	return m.sdk.HandleDeserialize(ctx, in, replayed{out, metadata, nil})
}

type readCloser struct {
	io.Reader
	io.Closer
}

// decodeListV2 decodes a ListBucketResult in the subset of XML that S3
// servers write: ASCII, the declaration `<?xml version="1.0"
// encoding="UTF-8"?>` or none, elements without namespace prefixes, the
// five named entities and character references to printable ASCII. ok is
// false for anything else (a comment, CDATA, a carriage return, a value
// that does not parse, a RestoreStatus, an element where the SDK wants a
// value), which the SDK then decodes.
func decodeListV2(b []byte) (*awss3.ListObjectsV2Output, bool) {
	d := &listDecoder{b: b}
	d.skipSpace()
	if d.hasPrefix("<?") {
		if !d.declaration() {
			return nil, false
		}
	}
	d.skipSpace()
	name, ok := d.startTag()
	if !ok || name != "ListBucketResult" || d.selfClosed {
		return nil, false
	}
	out := &awss3.ListObjectsV2Output{}
	for !d.bad {
		child, end, ok := d.child(name)
		if !ok {
			return nil, false
		}
		if end {
			break
		}
		switch {
		case strings.EqualFold(child, "Contents"):
			if o, ok := d.object(child); ok {
				out.Contents = append(out.Contents, o)
			}
		case strings.EqualFold(child, "IsTruncated"):
			out.IsTruncated = parsed(d, child, strconv.ParseBool)
		case strings.EqualFold(child, "KeyCount"):
			if n := parsed(d, child, parseInt); n != nil {
				k := int32(*n) // as the SDK does
				out.KeyCount = &k
			}
		case strings.EqualFold(child, "MaxKeys"):
			parsed(d, child, parseInt)
		case strings.EqualFold(child, "NextContinuationToken"):
			out.NextContinuationToken = parsed(d, child, asString)
		case strings.EqualFold(child, "ContinuationToken"):
			out.ContinuationToken = parsed(d, child, asString)
		case strings.EqualFold(child, "Name"), strings.EqualFold(child, "Prefix"), strings.EqualFold(child, "Delimiter"),
			strings.EqualFold(child, "StartAfter"), strings.EqualFold(child, "EncodingType"):
			parsed(d, child, asString)
		case strings.EqualFold(child, "CommonPrefixes"):
			// its Prefix is a value to the SDK; List asks for no delimiter
			d.bad = !d.leaves(child)
		default:
			d.bad = !d.skip(child)
		}
	}
	if d.bad {
		return nil, false
	}
	return out, true
}

// object decodes one Contents element, its start tag read.
func (d *listDecoder) object(name string) (types.Object, bool) {
	var o types.Object
	if d.selfClosed {
		return o, true
	}
	for !d.bad {
		child, end, ok := d.child(name)
		if !ok {
			d.bad = true
			break
		}
		if end {
			return o, true
		}
		switch {
		case strings.EqualFold(child, "Key"):
			o.Key = parsed(d, child, asString)
		case strings.EqualFold(child, "Size"):
			o.Size = parsed(d, child, parseInt)
		case strings.EqualFold(child, "LastModified"):
			o.LastModified = parsed(d, child, smithytime.ParseDateTime)
		case strings.EqualFold(child, "ETag"), strings.EqualFold(child, "StorageClass"),
			strings.EqualFold(child, "ChecksumAlgorithm"), strings.EqualFold(child, "ChecksumType"):
			parsed(d, child, asString)
		case strings.EqualFold(child, "Owner"):
			d.bad = !d.leaves(child)
		case strings.EqualFold(child, "RestoreStatus"):
			d.bad = true // values the SDK parses, which List never reads
		default:
			d.bad = !d.skip(child)
		}
	}
	return o, false
}

func asString(v string) (string, error) { return v, nil }
func parseInt(v string) (int64, error)  { return strconv.ParseInt(v, 10, 64) }

// parsed reads the value of the leaf element name (its start tag read)
// and parses it as the SDK does: nil, and d marked bad, when either fails.
func parsed[T any](d *listDecoder, name string, parse func(string) (T, error)) *T {
	v, ok := d.value(name)
	if !ok {
		d.bad = true
		return nil
	}
	t, err := parse(v)
	if err != nil {
		d.bad = true
		return nil
	}
	return &t
}

type listDecoder struct {
	b          []byte
	i          int
	selfClosed bool // the last start tag read was <name/>
	text       []byte
	bad        bool // something the fast path does not accept was met
}

func (d *listDecoder) hasPrefix(p string) bool { return bytes.HasPrefix(d.b[d.i:], []byte(p)) }

func (d *listDecoder) skipSpace() {
	for d.i < len(d.b) && isSpace(d.b[d.i]) {
		d.i++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func isNameByte(c byte, first bool) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' ||
		!first && (c >= '0' && c <= '9' || c == '.' || c == '-')
}

// declaration reads the XML declaration, accepting only the two forms
// encoding/xml reads as UTF-8 version 1.0 without a charset reader.
func (d *listDecoder) declaration() bool {
	for _, decl := range []string{`<?xml version="1.0" encoding="UTF-8"?>`, `<?xml version="1.0"?>`} {
		if d.i == 0 && d.hasPrefix(decl) {
			d.i += len(decl)
			return true
		}
	}
	return false
}

// name reads an element name: ASCII letters, digits, '_', '.', '-' (no
// namespace prefix).
func (d *listDecoder) name() (string, bool) {
	s := d.i
	for d.i < len(d.b) && isNameByte(d.b[d.i], d.i == s) {
		d.i++
	}
	if d.i == s {
		return "", false
	}
	return string(d.b[s:d.i]), true
}

// startTag reads <name attr="v" ...> or <name/> at d.i.
func (d *listDecoder) startTag() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '<' {
		return "", false
	}
	d.i++
	name, ok := d.name()
	if !ok {
		return "", false
	}
	for {
		sp := d.i
		d.skipSpace()
		if d.i >= len(d.b) {
			return "", false
		}
		switch d.b[d.i] {
		case '>':
			d.i++
			d.selfClosed = false
			return name, true
		case '/':
			if d.i+1 < len(d.b) && d.b[d.i+1] == '>' {
				d.i += 2
				d.selfClosed = true
				return name, true
			}
			return "", false
		}
		if d.i == sp || !d.attribute() {
			return "", false // attributes are separated by space
		}
	}
}

// attribute reads name="value" (or single quotes); the name may have one
// prefix (xmlns:x).
func (d *listDecoder) attribute() bool {
	if _, ok := d.name(); !ok {
		return false
	}
	if d.i < len(d.b) && d.b[d.i] == ':' {
		d.i++
		if _, ok := d.name(); !ok {
			return false
		}
	}
	d.skipSpace()
	if d.i >= len(d.b) || d.b[d.i] != '=' {
		return false
	}
	d.i++
	d.skipSpace()
	if d.i >= len(d.b) || d.b[d.i] != '"' && d.b[d.i] != '\'' {
		return false
	}
	q := d.b[d.i]
	d.i++
	s := d.i
	for d.i < len(d.b) && d.b[d.i] != q {
		if d.b[d.i] == '<' {
			return false
		}
		d.i++
	}
	if d.i >= len(d.b) {
		return false
	}
	if _, ok := d.decodeText(d.b[s:d.i], nil); !ok {
		return false
	}
	d.i++
	return true
}

// endTag reads </name> at d.i.
func (d *listDecoder) endTag(name string) bool {
	if !d.hasPrefix("</") {
		return false
	}
	d.i += 2
	if !d.hasPrefix(name) {
		return false
	}
	d.i += len(name)
	if d.i < len(d.b) && isNameByte(d.b[d.i], false) {
		return false // a longer name
	}
	d.skipSpace()
	if d.i >= len(d.b) || d.b[d.i] != '>' {
		return false
	}
	d.i++
	return true
}

// child reads the next child element's start tag of the element name,
// skipping white space, or name's end tag (end). Text other than white
// space between elements is refused.
func (d *listDecoder) child(name string) (child string, end, ok bool) {
	d.skipSpace()
	if d.hasPrefix("</") {
		return "", true, d.endTag(name)
	}
	child, ok = d.startTag()
	return child, false, ok
}

// value reads the text of a leaf element whose start tag was just read,
// and its end tag: what smithy's NodeDecoder.Value accepts, in the subset
// of XML decoded here.
func (d *listDecoder) value(name string) (string, bool) {
	if d.selfClosed {
		return "", true
	}
	s := d.i
	for d.i < len(d.b) && d.b[d.i] != '<' {
		d.i++
	}
	raw := d.b[s:d.i]
	if !d.endTag(name) {
		return "", false
	}
	text, ok := d.decodeText(raw, d.text[:0])
	if !ok {
		return "", false
	}
	if text == nil {
		return string(raw), true
	}
	d.text = text
	return string(text), true
}

// leaves reads the children of an element whose start tag was just read,
// each of them a value.
func (d *listDecoder) leaves(name string) bool {
	if d.selfClosed {
		return true
	}
	for {
		child, end, ok := d.child(name)
		if !ok {
			return false
		}
		if end {
			return true
		}
		if _, ok := d.value(child); !ok {
			return false
		}
	}
}

// skip reads an element the decoder has no use for (its start tag read):
// any nesting of elements and text.
func (d *listDecoder) skip(name string) bool {
	if d.selfClosed {
		return true
	}
	for {
		s := d.i
		for d.i < len(d.b) && d.b[d.i] != '<' {
			d.i++
		}
		if _, ok := d.decodeText(d.b[s:d.i], nil); !ok {
			return false
		}
		if d.hasPrefix("</") {
			return d.endTag(name)
		}
		child, ok := d.startTag()
		if !ok || !d.skip(child) {
			return false
		}
	}
}

// decodeText checks raw text (or an attribute's value) and resolves its
// references, appending to buf: nil when raw has none (it is then the
// text). ok is false for a byte outside tab, newline and printable ASCII,
// and for a reference other than the five named entities and character
// references to those bytes.
func (d *listDecoder) decodeText(raw, buf []byte) ([]byte, bool) {
	if bytes.Contains(raw, []byte("]]>")) {
		return nil, false // encoding/xml refuses it outside CDATA
	}
	amp := -1
	for i, c := range raw {
		if c == '&' {
			if amp < 0 {
				amp = i
			}
			continue
		}
		if c < 0x20 && c != '\t' && c != '\n' || c > 0x7e {
			return nil, false
		}
	}
	if amp < 0 {
		return nil, true
	}
	buf = append(buf, raw[:amp]...)
	for i := amp; i < len(raw); {
		c := raw[i]
		if c != '&' {
			buf = append(buf, c)
			i++
			continue
		}
		semi := bytes.IndexByte(raw[i:], ';')
		if semi < 0 {
			return nil, false
		}
		ref := string(raw[i+1 : i+semi])
		i += semi + 1
		switch ref {
		case "lt":
			buf = append(buf, '<')
		case "gt":
			buf = append(buf, '>')
		case "amp":
			buf = append(buf, '&')
		case "apos":
			buf = append(buf, '\'')
		case "quot":
			buf = append(buf, '"')
		default:
			if len(ref) < 2 || ref[0] != '#' || len(ref) > 8 {
				return nil, false
			}
			base, digits := 10, ref[1:]
			if digits[0] == 'x' {
				base, digits = 16, digits[1:]
			}
			if digits == "" || digits[0] == '+' || digits[0] == '-' {
				return nil, false
			}
			n, err := strconv.ParseUint(digits, base, 8)
			if err != nil || n < 0x20 && n != '\t' && n != '\n' || n > 0x7e {
				return nil, false
			}
			buf = append(buf, byte(n))
		}
	}
	return buf, true
}
