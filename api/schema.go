package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Schemer is a type that gives its own JSON Schema (one with a custom
// JSON form).
type Schemer interface{ JSONSchema() map[string]any }

// Schemas reflects Go types into JSON Schema 2020-12 (the dialect of
// OpenAPI 3.1). Named struct types become components, referred to by
// "#/components/schemas/<Name>"; the rest are inlined.
type Schemas struct {
	Defs  map[string]any
	types map[string]reflect.Type
}

// NewSchemas starts an empty set of components.
func NewSchemas() *Schemas {
	return &Schemas{Defs: map[string]any{}, types: map[string]reflect.Type{}}
}

// Ref returns the schema of v's type (a $ref for a named struct),
// adding what it needs to Defs; a OneOf is each of its types' schemas.
func (s *Schemas) Ref(v any) map[string]any {
	if one, ok := v.(OneOf); ok {
		refs := make([]any, len(one))
		for i, x := range one {
			refs[i] = s.Ref(x)
		}
		return map[string]any{"oneOf": refs}
	}
	return s.of(reflect.TypeOf(v))
}

// OneOf is an answer of one of several types (zero values of each), told
// apart by their required fields: a report, or the job's state while
// there is none yet.
type OneOf []any

// Name is the component name of a named struct type.
func Name(v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

var (
	timeType    = reflect.TypeOf(time.Time{})
	rawType     = reflect.TypeOf(json.RawMessage{})
	schemerType = reflect.TypeOf((*Schemer)(nil)).Elem()
)

func (s *Schemas) of(t reflect.Type) map[string]any {
	if t.Implements(schemerType) {
		return reflect.Zero(t).Interface().(Schemer).JSONSchema()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return s.of(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": s.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.of(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if t.Name() == "" {
			return s.object(t)
		}
		name := t.Name()
		if prev, ok := s.types[name]; ok && prev != t {
			panic(fmt.Sprintf("api: two types named %s (%s and %s): a component name must be unique", name, prev, t))
		}
		if _, ok := s.types[name]; !ok {
			s.types[name] = t
			s.Defs[name] = map[string]any{} // a placeholder while recursing
			s.Defs[name] = s.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	panic(fmt.Sprintf("api: no schema for %s", t))
}

// object is a struct's schema: its JSON fields (embedded structs'
// fields inline), closed to others, as the server refuses unknown fields.
// An embedded pointer is a group of fields sent together or not at all:
// none of them is required.
func (s *Schemas) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var additional any = false
	var walk func(t reflect.Type, optional bool)
	walk = func(t reflect.Type, optional bool) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				et, group := f.Type, false
				if et.Kind() == reflect.Pointer {
					et, group = et.Elem(), true
				}
				if et.Kind() == reflect.Struct {
					walk(et, optional || group)
					continue
				}
			}
			if f.Tag.Get("additional") == "true" {
				fs := s.of(f.Type.Elem())
				annotate(fs, f)
				additional = fs
				continue
			}
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fs := clone(s.of(f.Type))
			if _, isRef := fs["$ref"]; isRef {
				// a component is described where it is defined; a field
				// adds only its description, and null when it may be null
				if f.Tag.Get("nullable") == "true" {
					fs = map[string]any{"oneOf": []any{fs, map[string]any{"type": "null"}}}
				}
				if d := f.Tag.Get("doc"); d != "" {
					fs["description"] = d
				}
			} else {
				annotate(fs, f)
			}
			props[name] = fs
			if f.Tag.Get("required") == "true" && !optional {
				required = append(required, name)
			}
		}
	}
	walk(t, false)
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": additional}
	if required != nil {
		out["required"] = required
	}
	return out
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// annotate adds a field's tags to its schema.
func annotate(fs map[string]any, f reflect.StructField) {
	tag := f.Tag
	if d := tag.Get("doc"); d != "" {
		fs["description"] = d
	}
	if e := tag.Get("enum"); e != "" {
		list, ok := Enums[e]
		if !ok {
			panic(fmt.Sprintf("api: %s: no enum %q in api.Enums", f.Name, e))
		}
		vals := make([]any, len(list))
		for i, v := range list {
			vals[i] = v
		}
		target := fs
		if fs["type"] == "array" {
			target = clone(fs["items"].(map[string]any))
			fs["items"] = target
		}
		target["enum"] = vals
	}
	if k := tag.Get("keys"); k != "" {
		list, ok := Enums[k]
		if !ok {
			panic(fmt.Sprintf("api: %s: no enum %q in api.Enums", f.Name, k))
		}
		fs["propertyNames"] = map[string]any{"enum": toAny(list)}
	}
	for _, k := range []string{"minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"} {
		if v := tag.Get(k); v != "" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				panic(fmt.Sprintf("api: %s: %s:%q is not a number", f.Name, k, v))
			}
			fs[k] = n
		}
	}
	if c, ok := tag.Lookup("const"); ok {
		if fs["type"] == "string" {
			fs["const"] = c
		} else {
			var v any
			if err := json.Unmarshal([]byte(c), &v); err != nil {
				panic(fmt.Sprintf("api: %s: const %q is not JSON: %v", f.Name, c, err))
			}
			fs["const"] = v
		}
	}
	if p := tag.Get("pattern"); p != "" {
		fs["pattern"] = p
	}
	if p := tag.Get("format"); p != "" {
		fs["format"] = p
	}
	if ex := tag.Get("example"); ex != "" {
		var v any
		if err := json.Unmarshal([]byte(ex), &v); err != nil {
			panic(fmt.Sprintf("api: %s: example %q is not JSON: %v", f.Name, ex, err))
		}
		fs["examples"] = []any{v}
	}
	if tag.Get("nullable") == "true" {
		switch ty := fs["type"].(type) {
		case string:
			fs["type"] = []any{ty, "null"}
		default:
			inner := clone(fs)
			for k := range fs {
				delete(fs, k)
			}
			if d, ok := inner["description"]; ok {
				fs["description"] = d
				delete(inner, "description")
			}
			fs["oneOf"] = []any{inner, map[string]any{"type": "null"}}
		}
	}
}

func toAny(list []string) []any {
	out := make([]any, len(list))
	for i, v := range list {
		out[i] = v
	}
	return out
}
