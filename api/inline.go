package api

import (
	"encoding/json"
	"reflect"
)

// marshalInline writes fixed (a struct) as a JSON object with extra's
// entries beside its fields: an object whose named keys and open-ended
// keys share one level (the additional tag describes the latter).
func marshalInline[V any](fixed any, extra map[string]V) ([]byte, error) {
	b, err := json.Marshal(fixed)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	e, err := json.Marshal(extra)
	if err != nil {
		return nil, err
	}
	if len(b) == 2 { // {}
		return e, nil
	}
	return append(append(b[:len(b)-1], ','), e[1:]...), nil
}

// unmarshalInline reads b into fixed, and the keys that are none of its
// fields into extra.
func unmarshalInline[V any](b []byte, fixed any, extra *map[string]V) error {
	if err := json.Unmarshal(b, fixed); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, f := range Fields(reflect.TypeOf(fixed)) {
		known[f] = true
	}
	for k, raw := range all {
		if known[k] {
			continue
		}
		var v V
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if *extra == nil {
			*extra = map[string]V{}
		}
		(*extra)[k] = v
	}
	return nil
}
