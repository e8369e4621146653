package repository

import (
	"encoding/json"
	"strings"
	"testing"
)

// IDs decode from what MarshalJSON writes and from any other JSON string
// of 64 hex digits; anything else is refused, as ParseID refuses it.
func TestIDJSON(t *testing.T) {
	want := ID{0xde, 0xad, 0xbe, 0xef, 31: 0x01}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		string(b),
		strings.ToUpper(string(b)),
		`"\u0064` + string(b)[2:], // an escaped first digit
	} {
		var got ID
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{
		`"` + strings.Repeat("g", 64) + `"`,
		`"` + strings.Repeat("0", 63) + `"`,
		`"` + strings.Repeat("0", 65) + `"`,
		`12`,
	} {
		var got ID
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("%s decoded to %v", in, got)
		}
	}
}
