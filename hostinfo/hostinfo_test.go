package hostinfo

import "testing"

func TestGet(t *testing.T) {
	i := Get()
	if i.KernelVersion == "" || i.Hostname == "" {
		t.Fatalf("missing fields: %+v", i)
	}
	t.Logf("%+v", i)
}
