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

func TestHealthComponentsKeepTheLocationsBesideTheNamedParts(t *testing.T) {
	c := HealthComponents{Scheduler: SchedulerHealth{Status: "running"},
		Storage: map[string]StorageHealth{"storage_local": {Status: "healthy", LastCheck: "2025-03-15T10:30:00Z"}}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	if _, ok := m["storage_local"]; !ok || m["scheduler"] == nil || m["Storage"] != nil {
		t.Fatalf("%s", b)
	}
	var back HealthComponents
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Storage, c.Storage) || back.Scheduler.Status != "running" {
		t.Fatalf("%+v %v", back, err)
	}
	if b, _ := json.Marshal(HealthComponents{}); strings.Contains(string(b), "storage_") {
		t.Fatalf("no locations: %s", b)
	}
}

func TestAnEmbeddedPointerIsAnOptionalGroup(t *testing.T) {
	s := NewSchemas()
	s.Ref(StatusLocation{})
	s.Ref(StorageAlertDetails{})
	loc := s.Defs["StatusLocation"].(map[string]any)
	if _, ok := loc["properties"].(map[string]any)["used"]; !ok || !reflect.DeepEqual(loc["required"], []string{"health"}) {
		t.Fatalf("StatusLocation: a location that cannot be reached has no space: %v", loc["required"])
	}
	alert := s.Defs["StorageAlertDetails"].(map[string]any)
	if !reflect.DeepEqual(alert["required"], []string{"available", "used", "total", "utilization"}) {
		t.Fatalf("StorageAlertDetails: %v", alert["required"])
	}
	// an absent group is left out, a present one is sent whole
	b, _ := json.Marshal(StatusLocation{Type: "local", Health: "unreachable"})
	if strings.Contains(string(b), "used") {
		t.Fatalf("%s", b)
	}
	b, _ = json.Marshal(StatusLocation{Type: "local", Health: "good", StatusSpace: &StatusSpace{}})
	if !strings.Contains(string(b), `"used_bytes":0`) {
		t.Fatalf("%s", b)
	}
}

func TestOneOfListsEachType(t *testing.T) {
	s := NewSchemas()
	got := s.Ref(OneOf{VerifyReport{}, ReportPending{}})
	want := []any{map[string]any{"$ref": "#/components/schemas/VerifyReport"}, map[string]any{"$ref": "#/components/schemas/ReportPending"}}
	if !reflect.DeepEqual(got["oneOf"], want) || s.Defs["VerifyReport"] == nil || s.Defs["ReportPending"] == nil {
		t.Fatalf("%v", got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2TB": 2e12, "500 GB": 5e11, "10GiB": 10 << 30, "1024": 1024, "1.5MB": 1.5e6} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"lots", "-1GB", "1XB", ""} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}
