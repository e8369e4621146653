package apiserver

import (
	"slices"
	"testing"

	"backupd/codes"
)

// A job's error object carries its code's suggested actions from the
// codes table (the spec's codes) or the API's own list.
func TestJobErrorsSuggestTheirCodesActions(t *testing.T) {
	for _, c := range codes.All() {
		e := jobError(string(c), "x", nil)
		if !slices.Equal(e.SuggestedActions, c.SuggestedActions()) {
			t.Errorf("%s: %v", c, e.SuggestedActions)
		}
	}
	if a := jobError("", "x", nil).SuggestedActions; !slices.Equal(a, codes.ComponentFailure.SuggestedActions()) {
		t.Errorf("no code: %v", a)
	}
}
