package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestUnknownFieldNamesThePathAndTheAllowedFields(t *testing.T) {
	cases := []struct {
		v       any
		body    string
		path    string
		allowed string
	}{
		{CreateBackupRequest{}, `{"components": {"data": true}, "colour": 1}`, "colour", "name"},
		{CreateBackupRequest{}, `{"Type": "full", "colour": 1}`, "colour", "components"}, // case-insensitive match is known
		{RetentionUpdateRequest{}, `{"retention_policies": {"full_backups": {"daily": 1, "hourly": 2}}}`, "retention_policies.full_backups.hourly", "daily,weekly,monthly,yearly"},
		{StorageUpdateRequest{}, `{"policies": {"encryption": {"key_rotation": 3}}}`, "policies.encryption.key_rotation", "key_rotation_days"},
		{RepairRequest{}, `{"backup_ids": ["a"], "dry": true}`, "dry", "backup_ids,dry_run"},
	}
	for _, c := range cases {
		path, allowed, ok := UnknownField([]byte(c.body), c.v)
		if !ok || path != c.path || !strings.Contains(strings.Join(allowed, ","), c.allowed) {
			t.Errorf("%T %s: %q %v %v", c.v, c.body, path, allowed, ok)
		}
	}
	if _, _, ok := UnknownField([]byte(`{"components": ["data"], "type": "full"}`), CreateBackupRequest{}); ok {
		t.Error("a body of known fields has an unknown one")
	}
}

func TestSchemaCarriesTheTags(t *testing.T) {
	s := NewSchemas()
	ref := s.Ref(TokenRequest{})
	if ref["$ref"] != "#/components/schemas/TokenRequest" {
		t.Fatalf("ref %v", ref)
	}
	got, _ := json.Marshal(s.Defs["TokenRequest"])
	var m map[string]any
	json.Unmarshal(got, &m)
	props := m["properties"].(map[string]any)
	role := props["role"].(map[string]any)
	hours := props["expires_in_hours"].(map[string]any)
	if !reflect.DeepEqual(m["required"], []any{"name", "role"}) || m["additionalProperties"] != false ||
		!reflect.DeepEqual(role["enum"], []any{"viewer", "operator", "admin"}) ||
		hours["type"] != "integer" || hours["minimum"] != 1.0 || hours["maximum"] != 87600.0 {
		t.Fatalf("TokenRequest schema %s", got)
	}
	// a map of locations beside the named fields
	s.Ref(StorageUpdateRequest{})
	su := s.Defs["StorageUpdateRequest"].(map[string]any)
	if su["additionalProperties"].(map[string]any)["$ref"] != "#/components/schemas/LocationUpdate" {
		t.Fatalf("StorageUpdateRequest %v", su)
	}
}

func TestEveryEnumTagNamesAList(t *testing.T) {
	// the reflector panics on an unknown enum name: reflect every request
	s := NewSchemas()
	for _, v := range Requests {
		s.Ref(v)
	}
	if len(s.Defs) < len(Requests) {
		t.Fatalf("%d components for %d requests", len(s.Defs), len(Requests))
	}
}
