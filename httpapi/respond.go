package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// maxBody bounds every request body; larger bodies get errBodyTooLarge
// before any parsing.
const maxBody = 1 << 20

// errBodyTooLarge answers a body over maxBody, whichever layer reads it
// first (the signature check or the handler): 413, not 400, so a client
// knows to split the request rather than fix a field.
var errBodyTooLarge = &eventstore.Error{Kind: eventstore.KindTooLarge, Code: "PAYLOAD_TOO_LARGE",
	Message: "the request body is larger than 1 MiB", Details: []eventstore.FieldIssue{{Field: "body", Issue: "must be at most 1 MiB"}}}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"statusCode":500,"code":"INTERNAL","error":"Internal Server Error","message":"encoding failed"}`, http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, buf.Bytes())
}

// writeRaw sends already-encoded JSON, used where the exact bytes matter
// (idempotent replays).
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readBody returns the raw body. A body the auth layer already buffered
// to check its signature is handed over as it is, not copied again.
func readBody(r *http.Request) ([]byte, error) {
	if bb, ok := r.Body.(*bufferedBody); ok {
		return bb.rest(), nil
	}
	if r.Body == nil {
		return nil, nil
	}
	return readWhole(r)
}

// readWhole reads the rest of r's body, refusing one over maxBody.
func readWhole(r *http.Request) ([]byte, error) {
	b, err := readAllBounded(r.Body, r.ContentLength)
	if err != nil {
		return nil, eventstore.Invalid("could not read the request body")
	}
	if len(b) > maxBody {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// bufferedBody is a request body already read into memory. It reads like
// the original, and readBody takes what is left of it without a copy.
type bufferedBody struct {
	b   []byte
	off int
}

func (bb *bufferedBody) Read(p []byte) (int, error) {
	if bb.off >= len(bb.b) {
		return 0, io.EOF
	}
	n := copy(p, bb.b[bb.off:])
	bb.off += n
	return n, nil
}

func (*bufferedBody) Close() error { return nil }

// rest returns the unread bytes and marks them read.
func (bb *bufferedBody) rest() []byte {
	b := bb.b[bb.off:]
	bb.off = len(bb.b)
	return b
}

// presizeLimit caps the buffer a Content-Length alone can make us
// allocate: a client that claims a megabyte and sends it slowly would
// otherwise hold a megabyte per connection for a few bytes sent. A bulk
// request of 100 actions is ~25 KB.
const presizeLimit = 64 << 10

// readAllBounded reads r to its end, or to one byte past maxBody, into a
// buffer sized from Content-Length when the client sent one: io.ReadAll
// starts at 512 bytes and regrows, which for a bulk body of 30 KB copied
// it six times.
func readAllBounded(r io.Reader, contentLength int64) ([]byte, error) {
	size := 512
	if contentLength > 0 {
		size = int(min(contentLength, presizeLimit)) + 1 // room to see EOF without growing
	}
	b := make([]byte, 0, size)
	lr := io.LimitReader(r, maxBody+1)
	for {
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// decodeJSON decodes the body into v. Like the OpenAPI document, which
// gives every request body `additionalProperties: false`, it refuses
// members v has no field for (free-form members such as metadata are
// json.RawMessage, which takes anything), and it names what is wrong by
// its JSON path in the wire's terms, never by a Go type.
func decodeJSON(r *http.Request, v any) ([]byte, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return b, eventstore.Invalid("a JSON body is required", eventstore.FieldIssue{Field: "body", Issue: "empty"})
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return b, decodeError(b, v, err)
	}
	// What follows the value must be JSON white space only (space, tab,
	// CR, LF; not Unicode's other spaces). dec.More was used here: it
	// refilled the decoder's buffer to look, which tripled what decoding a
	// small body allocated, and it let a stray ']' or '}' through.
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return b, eventstore.Invalid("the body has trailing data", eventstore.FieldIssue{Field: "body", Issue: "trailing data after the JSON value"})
	}
	if bytes.Contains(b, []byte(`\u0000`)) {
		if field, ok := nulField(b); ok {
			return b, eventstore.Invalid("text may not contain the NUL character", eventstore.FieldIssue{Field: field, Issue: "contains \\u0000"})
		}
	}
	return b, nil
}

// decodeError turns a decoding failure into a validation error. Syntax
// errors speak of bytes and characters and are passed on; everything else
// is located by bodyIssue, because the decoder's messages name Go types.
func decodeError(b []byte, v any, err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) || !json.Valid(b) {
		return eventstore.Invalid("the body is not valid JSON", eventstore.FieldIssue{Field: "body", Issue: err.Error()})
	}
	if fi := bodyIssue(b, reflect.TypeOf(v)); fi != nil {
		if fi.Issue == unknownMember {
			return eventstore.Invalid("the body has a member this endpoint does not accept: "+fi.Field, *fi)
		}
		return eventstore.Invalid("the body does not match this endpoint's schema: "+fi.Field+" "+fi.Issue, *fi)
	}
	return eventstore.Invalid("the body does not match this endpoint's schema", eventstore.FieldIssue{Field: "body", Issue: "does not match the schema; see /partner-api"})
}

// nulField reports the first JSON path whose key or string value holds a
// NUL character. PostgreSQL text and jsonb refuse NUL, so one such string
// in an event would stop every read model that copies it; it is refused at
// the door. (The raw-bytes test above is only a fast path: an escaped
// backslash followed by "u0000" is not a NUL.)
func nulField(b []byte) (string, bool) {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return "", false
	}
	var walk func(path string, v any) (string, bool)
	walk = func(path string, v any) (string, bool) {
		switch v := v.(type) {
		case string:
			return path, strings.ContainsRune(v, 0)
		case map[string]any:
			for k, x := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if strings.ContainsRune(k, 0) {
					return p, true
				}
				if f, ok := walk(p, x); ok {
					return f, true
				}
			}
		case []any:
			for i, x := range v {
				if f, ok := walk(fmt.Sprintf("%s[%d]", path, i), x); ok {
					return f, true
				}
			}
		}
		return "", false
	}
	return walk("", v)
}

// Page is a parsed page/limit pair (CONTRACT §3).
type Page struct {
	Page  int
	Limit int
}

// Offset is the number of rows before the page.
func (p Page) Offset() int { return (p.Page - 1) * p.Limit }

// maxPage bounds the page parameter: (page-1)*limit must neither overflow
// nor give PostgreSQL an offset it refuses, and no client pages that far.
const maxPage = 100_000

func parsePage(r *http.Request) (Page, error) {
	p := Page{Page: 1, Limit: 20}
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return p, eventstore.Invalid("page must be a whole number from 1 to 100000", eventstore.FieldIssue{Field: "page", Issue: "must be an integer from 1 to 100000"})
		}
		p.Page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, eventstore.Invalid("limit must be from 1 to 100", eventstore.FieldIssue{Field: "limit", Issue: "must be an integer from 1 to 100"})
		}
		p.Limit = n
	}
	return p, nil
}

// pagination is the list envelope's pagination object.
type pagination struct {
	Page    int   `json:"page"`
	Limit   int   `json:"limit"`
	Total   int64 `json:"total"`
	HasMore bool  `json:"hasMore"`
}

type listBody[T any] struct {
	Data       []T        `json:"data"`
	Pagination pagination `json:"pagination"`
}

func writeList[T any](w http.ResponseWriter, p Page, total int64, data []T) {
	if data == nil {
		data = []T{}
	}
	writeJSON(w, http.StatusOK, listBody[T]{Data: data, Pagination: pagination{
		Page: p.Page, Limit: p.Limit, Total: total, HasMore: int64(p.Offset()+len(data)) < total,
	}})
}

// serveRead answers a read of the caller's tenant: once the read models
// reflect the tenant's last write (bounded by ReadWait), read's result is
// the 200 body; either error is the answer instead.
func (a *api) serveRead(w http.ResponseWriter, r *http.Request, read func(t eventstore.Tenant) (any, error)) {
	t, err := a.readTenant(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v, err := read(t)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
