package api

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Fields lists the JSON names of a struct type's fields (embedded
// structs' inline), in declaration order.
func Fields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	if t.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && embeddedStruct(f.Type) {
			out = append(out, Fields(f.Type)...)
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// UnknownField finds the first key in body (JSON) that v's type has no
// field for, walking nested objects, lists and maps: its path (a.b[2].c)
// and the fields allowed where it sits. ok is false when every key is known.
func UnknownField(body []byte, v any) (path string, allowed []string, ok bool) {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return "", nil, false
	}
	return unknownIn(doc, reflect.TypeOf(v), "")
}

func unknownIn(doc any, t reflect.Type, at string) (string, []string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return "", nil, false // its own form
	}
	join := func(k string) string {
		if at == "" {
			return k
		}
		return at + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, isObj := doc.(map[string]any)
		if !isObj {
			return "", nil, false
		}
		types := map[string]reflect.Type{}
		fieldTypes(t, types)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, known := types[k]
			if !known {
				// encoding/json matches names regardless of case
				for n, t := range types {
					if strings.EqualFold(n, k) {
						ft, known = t, true
						break
					}
				}
			}
			if !known {
				return join(k), Fields(t), true
			}
			if p, a, ok := unknownIn(obj[k], ft, join(k)); ok {
				return p, a, ok
			}
		}
	case reflect.Map:
		obj, isObj := doc.(map[string]any)
		if !isObj {
			return "", nil, false
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, a, ok := unknownIn(obj[k], t.Elem(), join(k)); ok {
				return p, a, ok
			}
		}
	case reflect.Slice, reflect.Array:
		list, isList := doc.([]any)
		if !isList {
			return "", nil, false
		}
		for i, e := range list {
			if p, a, ok := unknownIn(e, t.Elem(), at+"["+strconv.Itoa(i)+"]"); ok {
				return p, a, ok
			}
		}
	}
	return "", nil, false
}

func fieldTypes(t reflect.Type, into map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && embeddedStruct(f.Type) {
			fieldTypes(deref(f.Type), into)
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

// embeddedStruct: an embedded field of this type has its fields inline
// (a struct, or a pointer to one: a group of fields present together).
func embeddedStruct(t reflect.Type) bool { return deref(t).Kind() == reflect.Struct }

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
