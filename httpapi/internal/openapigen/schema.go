package openapigen

// Small constructors for JSON Schema fragments. Every token amount goes
// through tokens() so it is an int64 integer, never a fractional number.

func ref(name string) O { return obj("$ref", "#/components/schemas/"+name) }

func str(desc string, extra ...any) O {
	return obj("type", "string", "description", desc).with(extra...)
}

func enum(desc string, values ...string) O {
	return obj("type", "string", "description", desc, "enum", values)
}

func integer(desc string, extra ...any) O {
	return obj("type", "integer", "format", "int64", "description", desc).with(extra...)
}

func tokens(desc string, extra ...any) O {
	return obj("type", "integer", "format", "int64", "description", desc+" Whole SIR tokens (an integer).").with(extra...)
}

func boolean(desc string, extra ...any) O {
	return obj("type", "boolean", "description", desc).with(extra...)
}

func dateTime(desc string) O {
	return obj("type", "string", "format", "date-time", "description", desc+" RFC 3339, UTC.")
}

func date(desc string) O {
	return obj("type", "string", "format", "date", "description", desc+" (YYYY-MM-DD, UTC).")
}

func arr(items any, desc string, extra ...any) O {
	return obj("type", "array", "description", desc, "items", items).with(extra...)
}

// object builds {type: object, properties, required}. props alternates
// names and schemas.
func object(desc string, required []string, props ...any) O {
	p := obj(props...)
	o := obj("type", "object", "description", desc, "properties", p)
	if len(required) > 0 {
		o = o.with("required", required)
	}
	return o
}

// freeObject is an object whose members are the partner's own (metadata).
func freeObject(desc string) O {
	return obj("type", "object", "description", desc, "additionalProperties", true)
}

// nullable lets s also be JSON null (OpenAPI 3.1 type arrays; a $ref
// becomes oneOf [ref, null]).
func nullable(s O) O {
	for _, kv := range s {
		if kv.K == "$ref" {
			return obj("oneOf", []any{s, obj("type", "null")})
		}
	}
	for i, kv := range s {
		if kv.K == "type" {
			out := append(O{}, s...)
			out[i].V = []string{kv.V.(string), "null"}
			return out
		}
	}
	return s
}

func req(names ...string) []string { return names }
