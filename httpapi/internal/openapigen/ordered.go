// Package openapigen builds the partner API's OpenAPI 3.1 document
// (httpapi/openapi.json). The document is written in Go rather than by
// hand so that repeated pieces (error responses, headers, pagination,
// security) are stated once; the committed JSON is what the server serves,
// and a test fails when it differs from what this package generates.
package openapigen

import (
	"bytes"
	"encoding/json"
)

// O is a JSON object that keeps its keys in the order written, so the
// generated document reads top-down like a hand-written one.
type O []KV

// KV is one member of an O.
type KV struct {
	K string
	V any
}

// MarshalJSON writes the members in order.
func (o O) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(kv.K)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := marshal(kv.V)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// obj builds an O from alternating keys and values; nil values are
// dropped so optional members can be written inline.
func obj(kvs ...any) O {
	o := make(O, 0, len(kvs)/2)
	for i := 0; i+1 < len(kvs); i += 2 {
		if isNil(kvs[i+1]) {
			continue
		}
		o = append(o, KV{kvs[i].(string), kvs[i+1]})
	}
	return o
}

func isNil(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case O:
		return x == nil
	case []any:
		return x == nil
	case []string:
		return x == nil
	}
	return false
}

// with returns o plus the given members (replacing same-named ones).
func (o O) with(kvs ...any) O {
	out := append(O{}, o...)
	for _, kv := range obj(kvs...) {
		replaced := false
		for i := range out {
			if out[i].K == kv.K {
				out[i].V = kv.V
				replaced = true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// Document returns the indented JSON of the OpenAPI document.
func Document() ([]byte, error) {
	raw, err := marshal(build())
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
