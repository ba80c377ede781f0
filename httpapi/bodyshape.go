// Naming what is wrong with a request body that does not decode: the
// decoder's own errors name Go types (`Go struct field actionRequest.amount
// of type httpapi.decimalText`) and, for unknown members, no path at all.
// bodyIssue walks the parsed JSON beside the request struct's type and
// says, in the wire's terms, where the first problem is.

package httpapi

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirgiving/ledger/ledger/eventstore"
)

// unknownMember is the issue of a member the body does not have.
const unknownMember = "is not a member of this body"

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	decimalTextType = reflect.TypeFor[decimalText]()
	timeType        = reflect.TypeFor[time.Time]()
)

// bodyIssue returns the first member of body (parsed JSON) that does not
// fit t, the type decodeJSON decodes into, or nil if it finds none. Keys
// are visited in sorted order so the answer is the same every time.
func bodyIssue(body []byte, t reflect.Type) *eventstore.FieldIssue {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	return shapeIssue("", v, t)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldName(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

func shapeIssue(path string, v any, t reflect.Type) *eventstore.FieldIssue {
	issue := func(s string) *eventstore.FieldIssue { return &eventstore.FieldIssue{Field: fieldName(path), Issue: s} }
	if v == nil {
		return nil // null leaves a Go value as it is
	}
	switch t {
	case rawMessageType:
		return nil
	case decimalTextType:
		if !decimalJSON(v) {
			return issue(decimalIssue)
		}
		return nil
	case timeType:
		s, ok := v.(string)
		if _, err := time.Parse(time.RFC3339Nano, s); !ok || err != nil {
			return issue("must be an RFC 3339 timestamp")
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return shapeIssue(path, v, t.Elem())
	case reflect.Interface:
		return nil
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return issue("must be an object")
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			f, ok := memberField(t, k)
			if !ok {
				return &eventstore.FieldIssue{Field: join(path, k), Issue: unknownMember}
			}
			if fi := shapeIssue(join(path, k), obj[k], f.Type); fi != nil {
				return fi
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return issue("must be an object")
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if fi := shapeIssue(join(path, k), obj[k], t.Elem()); fi != nil {
				return fi
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return issue("must be an array")
		}
		for i, x := range arr {
			if fi := shapeIssue(path+"["+strconv.Itoa(i)+"]", x, t.Elem()); fi != nil {
				return fi
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return issue("must be a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return issue("must be a boolean")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); !ok || err != nil {
			return issue("must be an integer")
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); !ok || err != nil {
			return issue("must be a non-negative integer")
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			return issue("must be a number")
		}
	}
	return nil
}

// memberField finds the struct field a JSON member decodes into the way
// encoding/json does: the exact name first, then a case-insensitive match.
func memberField(t reflect.Type, key string) (reflect.StructField, bool) {
	var folded *reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if folded == nil && strings.EqualFold(name, key) {
			folded = &f
		}
	}
	if folded != nil {
		return *folded, true
	}
	return reflect.StructField{}, false
}
