package repository

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// fill sets every field v holds (recursively) to a value that is not
// its zero, so a field the binary form leaves out cannot go unseen.
func fill(t *testing.T, v reflect.Value, rng *rand.Rand) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d\x00é\"", rng.Intn(1000)))
	case reflect.Int, reflect.Int64:
		v.SetInt(rng.Int63n(1<<40) - 1<<39)
	case reflect.Uint8:
		v.SetUint(uint64(rng.Intn(255) + 1))
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(t, v.Index(i), rng)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(t, s.Index(i), rng)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; i < 3; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, rng)
			fill(t, e, rng)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			zone := time.FixedZone("", (rng.Intn(48)-24)*1800)
			v.Set(reflect.ValueOf(time.Unix(rng.Int63n(4e9), rng.Int63n(1e9)).In(zone)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fill(t, v.Field(i), rng)
		}
	default:
		t.Fatalf("fill: a field of kind %s: teach fill (and manifestBin) about it", v.Kind())
	}
}

// The binary form gives back what the JSON gives, field for field, nil
// and empty told apart; a field added to Manifest and not to the binary
// form fails here, since fill sets every field.
func TestManifestBinIsTheJSONsManifest(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	check := func(what string, m *Manifest) {
		t.Helper()
		js, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON Manifest
		if err := json.Unmarshal(js, &fromJSON); err != nil {
			t.Fatal(err)
		}
		bin := manifestBin(&fromJSON)
		got, err := decodeManifestBin(bin)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !reflect.DeepEqual(got, &fromJSON) {
			t.Fatalf("%s: the binary form gives\n%+v\nJSON gives\n%+v", what, got, &fromJSON)
		}
		again, _ := json.Marshal(got)
		if string(again) != string(js) {
			t.Fatalf("%s: encodes as\n%s\nnot\n%s", what, again, js)
		}
		// every cut is refused, not read as another manifest
		for i := 0; i < len(bin); i++ {
			if _, err := decodeManifestBin(bin[:i]); err == nil {
				t.Fatalf("%s: cut at %d of %d decodes", what, i, len(bin))
			}
		}
	}
	for i := 0; i < 20; i++ {
		var m Manifest
		fill(t, reflect.ValueOf(&m).Elem(), rng)
		check(fmt.Sprintf("filled %d", i), &m)
	}
	utc := time.Date(2026, 12, 6, 22, 0, 0, 123, time.UTC)
	check("zero", &Manifest{})
	check("empty, not nil", &Manifest{Tags: map[string]string{}, Components: []ComponentManifest{{Paths: []string{}, Include: []string{}}}})
	check("utc", &Manifest{Started: utc, Finished: utc.In(time.Local), Components: []ComponentManifest{{Name: "data"}}})
	if b := manifestBin(&Manifest{Started: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); b != nil {
		t.Fatalf("a time JSON cannot write has a binary form: %x", b)
	}
	if _, err := decodeManifestBin(append([]byte{manifestBinVersion + 1}, manifestBin(&Manifest{})[1:]...)); err == nil {
		t.Fatal("another version decodes")
	}
}

func BenchmarkManifestDecode(b *testing.B) {
	st := time.Date(2026, 12, 6, 22, 0, 0, 123, time.UTC)
	stats := Stats{Files: 300, Dirs: 31, Bytes: 360000, BytesRead: 3600, BlobsAdded: 7, BytesAdded: 20000, StoredAdded: 9000, DataAdded: 3600, StoredBytes: 200000, FilesUnread: 297}
	m := &Manifest{Version: manifestVersion, ID: "backup-20261206-220000-0123456789ab", Type: "incremental", Parent: "backup-20261206-215900-0123456789ab",
		Host: "gateway-7", Started: st, Finished: st.Add(70 * time.Millisecond), Compression: "zstd", Status: "completed", Stats: stats,
		Components: []ComponentManifest{{Name: "data", Paths: []string{"/srv/data"}, Stats: stats}}}
	js, _ := json.Marshal(m)
	bin := manifestBin(m)
	b.Run("json", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := parseManifestJSON(m.ID, js); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bin", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := decodeManifestBin(bin); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The binary form's layout is tied to manifestBinVersion: one cache is
// read by every backupd version a host runs, so a changed layout must
// come with a new version (and then a new golden here).
func TestManifestBinLayoutHasItsVersion(t *testing.T) {
	st := time.Date(2026, 12, 6, 22, 0, 0, 5, time.FixedZone("", 3600))
	stats := Stats{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	m := &Manifest{Version: 1, ID: "backup-20261206-220000-00", Type: "t", Parent: "p", Base: "b", Host: "h", Started: st, Finished: st.UTC(),
		Compression: "c", Tags: map[string]string{"k": "v"}, Status: "s", Stats: stats, KeyID: "key",
		Components: []ComponentManifest{{Name: "n", Paths: []string{"/a"}, Include: []string{}, Exclude: []string{"x"}, Tree: ID{1}, Stats: stats, Warnings: []string{"w"}, Error: "e"}}}
	const golden = "0102196261636b75702d32303236313230362d3232303030302d3030017401700162016823323032362d31322d30365432323a30303a30302e3030303030303030352b30313a30301e323032362d31322d30365432313a30303a30302e3030303030303030355a016302016b017602016e02022f61010201780100000000000000000000000000000000000000000000000000000000000000020406080a0c0e101214161802017701650173020406080a0c0e1012141618036b6579"
	if got := fmt.Sprintf("%x", manifestBin(m)); got != golden {
		t.Fatalf("the binary form of version %d changed: bump manifestBinVersion (caches of other backupd versions hold the old layout) and set the golden to\n%s", manifestBinVersion, got)
	}
}
