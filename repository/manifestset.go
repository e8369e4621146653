package repository

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"backupd/storage"
)

// Manifest sets and tombstones (format version 2) keep the cost of a
// listing flat in the number of backups. A backup writes its manifest
// alone, under manifests/<backup-id>, as before; garbage collection (and
// a writer's upkeep past LooseManifestBound, foldLoose) folds those loose
// manifests into sets of up to manifestSetMax, each one object
// under manifest-sets/ (named by its hash and its newest backup: see
// orderedSetName), sealed to the data key
// and authenticated with a key only full-access credentials hold (a
// write-only host cannot make a set that replaces other backups), and
// deletes the loose ones once the set is stored. Deleting a backup writes
// a tombstone, tombstones/<backup-id>, authenticated the same way, before
// it removes the loose manifest: a collection that folded the manifest
// meanwhile cannot bring it back.
//
// A collection rewrites the sets that hold tombstoned backups, and writes
// each such tombstone again; a tombstone goes in a later collection, when
// no listed set holds its backup and it was last written longer ago than
// the safety window (at least tombstoneMinAge). Readers list tombstones
// first, then loose manifests, then sets: a tombstone still listed when its
// backup's last set is listed, and a set written before the loose manifests
// it holds are deleted, mean every backup is in one listing or the other
// and no deleted one comes back. A set or loose manifest gone before it is
// read (a collection folded or rewrote it) makes the reader list again.
const (
	manifestSetsPrefix = "manifest-sets/"
	tombstonesPrefix   = "tombstones/"
	manifestSetMagic   = "BKMS"
	tombstoneMagic     = "BKTS"
	manifestSetVersion = 1
	// manifestSetMax bounds a set: a rewrite (a backup in it deleted)
	// costs at most this many manifests.
	manifestSetMax = 1000
	// tombstoneMinAge: a tombstone outlives the sets that held its backup
	// by at least this much, even with no safety window, so a reader that
	// listed such a set just before it went still finds the tombstone.
	tombstoneMinAge = 10 * time.Minute
)

// manifestSet is one stored set; entries are read on demand.
type manifestSet struct {
	oi      storage.ObjectInfo
	hash    ID
	newest  string     // the newest backup id in it, from its name
	entries []setEntry // sorted by id; nil until opened
	err     error      // why it could not be opened
}

type setEntry struct {
	id  string
	js  []byte // the manifest, JSON
	bin []byte // its binary form (manifestBin), when the cache had it or it was decoded; nil otherwise
	// grp: where js and bin are read from when first needed (a set
	// opened from its cached form); nil when they are here
	grp *setGroup
	gi  int // the entry's number in its set
}

// contents returns the entry's JSON and binary form, reading them first
// when they are not held.
func (e *setEntry) contents(ctx context.Context) (js, bin []byte, err error) {
	if e.grp == nil {
		return e.js, e.bin, nil
	}
	return e.grp.contents(ctx, e.gi)
}

// materialize returns entries with their contents held.
func materialize(ctx context.Context, entries []setEntry) ([]setEntry, error) {
	out := make([]setEntry, len(entries))
	for i, e := range entries {
		js, bin, err := e.contents(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = setEntry{id: e.id, js: js, bin: bin}
	}
	return out, nil
}

// Set names. Up to format version 3 a set is manifest-sets/<sha256>-<newest
// id>, which lists in the order of the hashes: finding the newest sets
// meant listing every set (bench case D: 20 sets at 10,000 backups, a
// millisecond of a 7 ms `repo list` on versitygw, and growing with the
// history). From version 4 it is manifest-sets/n<newest id, inverted>~<sha256>:
// each character of the id replaced by its mirror in the alphabet of
// backup ids, then '~', which sorts after every character of it. Names
// then sort newest first (an id that is a prefix of another sorts after
// it, as it is older), and after every name of the older form (which
// start with a hex digit), so a listing of the first few names finds the
// newest sets, and any set of the older form left (a backupd of version 3
// folding as the repository was upgraded) is among them and makes the
// reader list every set (setsFirst).
const (
	orderedSetMark = 'n'
	orderedSetEnd  = '~'
	// backupIDAlphabet: the characters of backup ids, in byte order
	backupIDAlphabet = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
	// formatCanarySet is what a backupd of version 3 that opened the
	// repository before its upgrade to 4 finds among the sets: a set it
	// cannot read, which stops its collections (a set of the new form it
	// does not see at all, and would take the data of its backups for
	// garbage); newer ones skip it. Its newest id sorts before every
	// backup-… id: a commit of that backupd, which opens the sets whose
	// newest is its new id or newer, does not open it (review).
	formatCanarySet = manifestSetsPrefix + "0000000000000000000000000000000000000000000000000000000000000000-0-format-4-canary"
)

// mirrorID maps each character of a backup id to its mirror in
// backupIDAlphabet (the mapping is its own inverse).
func mirrorID(id string) (string, bool) {
	b := []byte(id)
	for i, c := range b {
		k := strings.IndexByte(backupIDAlphabet, c)
		if k < 0 {
			return "", false
		}
		b[i] = backupIDAlphabet[len(backupIDAlphabet)-1-k]
	}
	return string(b), true
}

// orderedSetName is the version 4 name of the set whose older form is
// name ("" when name is not a set's).
func orderedSetName(name string) string {
	h, newest, ok := parseSetName(name)
	if !ok {
		return ""
	}
	inv, ok := mirrorID(newest)
	if !ok {
		return ""
	}
	return manifestSetsPrefix + string(orderedSetMark) + inv + string(orderedSetEnd) + h.String()
}

// isOrderedSetName reports whether name has the version 4 form.
func isOrderedSetName(name string) bool {
	base := strings.TrimPrefix(name, manifestSetsPrefix)
	return base != name && len(base) > 0 && base[0] == orderedSetMark
}

// parseSetName splits a set's name (either form) into its hash and its
// newest backup's id.
func parseSetName(name string) (ID, string, bool) {
	base := strings.TrimPrefix(name, manifestSetsPrefix)
	if base == name || name == formatCanarySet {
		return ID{}, "", false
	}
	if isOrderedSetName(name) {
		end := strings.IndexByte(base, orderedSetEnd)
		if end < 2 || len(base)-end-1 != 64 {
			return ID{}, "", false
		}
		newest, ok := mirrorID(base[1:end])
		id, err := ParseID(base[end+1:])
		if !ok || err != nil || ValidBackupID(newest) != nil {
			return ID{}, "", false
		}
		return id, newest, true
	}
	if len(base) < 66 || base[64] != '-' {
		return ID{}, "", false
	}
	id, err := ParseID(base[:64])
	if err != nil || ValidBackupID(base[65:]) != nil {
		return ID{}, "", false
	}
	return id, base[65:], true
}

// fullAccessKey derives a MAC key from the data private key, for objects
// only a full-access credential may make: the signing key is shared with
// write-only credentials, and a host holding one must not be able to make
// a set that replaces other backups' manifests (review), nor a tombstone
// that hides a backup.
func (k *Keys) fullAccessKey(label string) ([]byte, error) {
	if !k.CanRead() {
		return nil, ErrWriteOnly
	}
	h := hmac.New(sha256.New, k.DataPrivate)
	h.Write([]byte(label))
	return h.Sum(nil), nil
}

func (k *Keys) setKey() ([]byte, error)       { return k.fullAccessKey("backupd manifest set key v1") }
func (k *Keys) tombstoneKey() ([]byte, error) { return k.fullAccessKey("backupd tombstone key v1") }

func manifestSetMAC(key, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("backupd manifest set v1\x00"))
	h.Write(body)
	return h.Sum(nil)
}

// encodeManifestSet seals entries (sorted by id, distinct) into a set
// object and returns it with its name.
func encodeManifestSet(k *Keys, entries []setEntry) (string, []byte, error) {
	if len(entries) == 0 {
		return "", nil, errors.New("manifest set: no manifests")
	}
	for i := 1; i < len(entries); i++ {
		if entries[i-1].id >= entries[i].id {
			return "", nil, fmt.Errorf("manifest set: ids out of order at %s", entries[i].id)
		}
	}
	body := setBody(entries)
	key, err := k.setKey()
	if err != nil {
		return "", nil, err
	}
	s, err := newSealer(k.DataPublic)
	if err != nil {
		return "", nil, err
	}
	hdr := append([]byte(manifestSetMagic), manifestSetVersion)
	hdr = append(hdr, s.ephPublic...)
	raw := seal(s.aead, append([]byte{}, hdr...), append(manifestSetMAC(key, body), body...), hdr)
	sum := sha256.Sum256(raw)
	return manifestSetsPrefix + hex.EncodeToString(sum[:]) + "-" + entries[len(entries)-1].id, raw, nil
}

// decodeManifestSet opens a set object named name. The content must hash
// to the name, authenticate, carry the repository's signature, and end
// with the backup the name says.
func decodeManifestSet(k *Keys, name string, raw []byte) ([]setEntry, error) {
	hash, newest, ok := parseSetName(name)
	if !ok {
		return nil, fmt.Errorf("%s: %w: not a manifest set name", name, ErrCorrupt)
	}
	if sha256.Sum256(raw) != hash {
		return nil, fmt.Errorf("%s: %w: content does not match its name", name, ErrCorrupt)
	}
	if len(raw) < 5+32 || string(raw[:4]) != manifestSetMagic {
		return nil, fmt.Errorf("%s: %w: not a manifest set", name, ErrCorrupt)
	}
	if raw[4] != manifestSetVersion {
		return nil, fmt.Errorf("%s: manifest set version %d is not supported by this backupd (knows %d)", name, raw[4], manifestSetVersion)
	}
	hdr := raw[:5+32]
	aead, err := openSession(k.DataPrivate, hdr[5:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	plain, err := open(aead, nil, raw[len(hdr):], hdr)
	if err != nil || len(plain) < sha256.Size {
		return nil, fmt.Errorf("%s: %w: does not authenticate", name, ErrCorrupt)
	}
	key, err := k.setKey()
	if err != nil {
		return nil, err
	}
	mac, body := plain[:sha256.Size], plain[sha256.Size:]
	if !hmac.Equal(mac, manifestSetMAC(key, body)) {
		return nil, fmt.Errorf("%s: %w: not written with this repository's full-access keys", name, ErrCorrupt)
	}
	entries, rest, err := parseSetEntries(name, newest, body)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%s: %w: trailing bytes", name, ErrCorrupt)
	}
	return entries, err
}

// parseSetEntries reads the entries of a set's authenticated body (a
// count, then each entry's id and manifest, ids in order, the last one
// newest) and returns what follows them.
func parseSetEntries(name, newest string, body []byte) ([]setEntry, []byte, error) {
	bad := func(why string) error { return fmt.Errorf("%s: %w: %s", name, ErrCorrupt, why) }
	n, l := binary.Uvarint(body)
	if l <= 0 || n == 0 || n > uint64(len(body)) {
		return nil, nil, bad("bad count")
	}
	body = body[l:]
	field := func() ([]byte, bool) { return cutField(&body) }
	entries := make([]setEntry, 0, n)
	for i := uint64(0); i < n; i++ {
		id, ok1 := field()
		js, ok2 := field()
		if !ok1 || !ok2 {
			return nil, nil, bad("truncated")
		}
		e := setEntry{id: string(id), js: js}
		if ValidBackupID(e.id) != nil || (i > 0 && entries[i-1].id >= e.id) {
			return nil, nil, bad(fmt.Sprintf("entry %d: bad or unordered id", i))
		}
		entries = append(entries, e)
	}
	if entries[len(entries)-1].id != newest {
		return nil, nil, bad("its newest backup is not the one its name says")
	}
	return entries, body, nil
}

// appendField appends f, its length first (uvarint): what cutField reads.
func appendField(b, f []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(f))), f...)
}

// cutField takes a field, its length first (uvarint), off the front of
// *b: false when *b does not hold one.
func cutField(b *[]byte) ([]byte, bool) {
	m, l := binary.Uvarint(*b)
	if l <= 0 || m > uint64(len(*b)-l) {
		return nil, false
	}
	f := (*b)[l : l+int(m) : l+int(m)]
	*b = (*b)[l+int(m):]
	return f, true
}

// setBody is the body parseSetBody reads.
func setBody(entries []setEntry) []byte {
	var body []byte
	body = binary.AppendUvarint(body, uint64(len(entries)))
	for _, e := range entries {
		body = appendField(appendField(body, []byte(e.id)), e.js)
	}
	return body
}

// manifest decodes one entry of a set: from its binary form when it has
// one that names it, else from its JSON.
func (e *setEntry) manifest(ctx context.Context, set string) (*Manifest, error) {
	js, bin, err := e.contents(ctx)
	if err != nil {
		return nil, err
	}
	if m, ok := manifestFromBin(bin, e.id); ok {
		return m, nil
	}
	var m Manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w: %v", e.id, set, ErrCorrupt, err)
	}
	if m.ID != e.id {
		return nil, fmt.Errorf("manifest %s in %s: %w: names itself %q", e.id, set, ErrCorrupt, m.ID)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("manifest %s in %s: version %d is not supported by this backupd", e.id, set, m.Version)
	}
	return &m, nil
}

func tombstoneMAC(key []byte, id string, at uint64) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("backupd tombstone v1\x00" + id + "\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, at))
	return h.Sum(nil)
}

func encodeTombstone(k *Keys, id string, at time.Time) ([]byte, error) {
	key, err := k.tombstoneKey()
	if err != nil {
		return nil, err
	}
	ns := uint64(at.UnixNano())
	b := append([]byte(tombstoneMagic), 1)
	b = binary.BigEndian.AppendUint64(b, ns)
	return append(b, tombstoneMAC(key, id, ns)...), nil
}

func verifyTombstone(k *Keys, id string, raw []byte) error {
	key, err := k.tombstoneKey()
	if err != nil {
		return err
	}
	if len(raw) != 5+8+32 || string(raw[:4]) != tombstoneMagic || raw[4] != 1 ||
		!hmac.Equal(raw[13:], tombstoneMAC(key, id, binary.BigEndian.Uint64(raw[5:13]))) {
		return fmt.Errorf("%s%s: %w: tombstone does not authenticate (not written with this repository's keys); it is ignored",
			tombstonesPrefix, id, ErrCorrupt)
	}
	return nil
}

// manifestView is the repository's manifests as one listing saw them.
type manifestView struct {
	loose map[string]storage.ObjectInfo // backup id -> its own manifest object
	sets  []*manifestSet                // newest first
	tombs map[string]storage.ObjectInfo // verified tombstones
	// problems: tombstones that do not verify (ignored)
	problems []error
	// setsMore: only the newest sets were listed (setsFirst); the others
	// are no newer than the last of them
	setsMore bool
}

// setsFirst is how many sets a listing that needs the newest ones asks
// for (one more for the canary): a set holds 500 to 1,000 backups.
const setsFirst = 4

// inSets returns the set entry for id, if an opened set holds it.
func (v *manifestView) inSets(id string) (*manifestSet, *setEntry) {
	for _, s := range v.sets {
		if s.entries == nil {
			continue
		}
		i := sort.Search(len(s.entries), func(i int) bool { return s.entries[i].id >= id })
		if i < len(s.entries) && s.entries[i].id == id {
			return s, &s.entries[i]
		}
	}
	return nil, nil
}

// setMemo holds the sets this handle opened, by name (they never change).
type setMemo struct {
	mu   sync.Mutex
	sets map[string][]setEntry
}

// listManifestView lists loose manifests, then sets, then tombstones, and
// verifies the tombstones. With open, every set is opened too; a set that
// went meanwhile (rewritten by a collection) makes it list again.
func (r *Repository) listManifestView(ctx context.Context, open bool) (*manifestView, error) {
	if !open {
		return r.listManifestViewOnce(ctx, true, true, 0)
	}
	return r.listManifestViewOf(ctx, "", true, true)
}

// listSetsView is listManifestView without the loose manifests, opening
// only the sets that may hold id (those named by a backup no older): for
// looking up one backup whose loose manifest was not found, or whether a
// new backup's id is free. A set holds no backup newer than its name says
// (decodeManifestSet checks), so a new backup's id opens none, and a
// lookup's cost does not grow with the history before it. Without tombs,
// the tombstones are not listed (v.tombs is empty): a new backup's commit
// looks its own tombstone up by name.
func (r *Repository) listSetsView(ctx context.Context, id string, tombs bool) (*manifestView, error) {
	return r.listManifestViewOf(ctx, id, false, tombs)
}

// listManifestViewOf lists, then opens the sets whose newest backup is
// from or newer ("" opens every set). With from, it lists the newest sets
// first, and every set only when those may not be all it needs.
func (r *Repository) listManifestViewOf(ctx context.Context, from string, loose, tombs bool) (*manifestView, error) {
	var err error
	first := 0
	if from != "" {
		first = setsFirst
	}
	for attempt := 0; ; attempt++ {
		var v *manifestView
		v, err = r.listManifestViewOnce(ctx, loose, tombs, first)
		if err == nil && v.setsMore && (len(v.sets) == 0 || v.sets[len(v.sets)-1].newest >= from) {
			// the sets not listed may hold from: all of them (listed after
			// the rest still, as readers must)
			err = r.listSets(ctx, v, 0)
		}
		if err != nil {
			return nil, err
		}
		// newest first: the sets to open are a prefix
		n := sort.Search(len(v.sets), func(i int) bool { return v.sets[i].newest < from })
		var gone atomic.Bool
		err = parallel(ctx, n, 4, func(i int) error {
			if e := r.openSet(ctx, v.sets[i]); errors.Is(e, storage.ErrNotFound) {
				gone.Store(true)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !gone.Load() || attempt == 4 {
			for _, s := range v.sets {
				if errors.Is(s.err, storage.ErrNotFound) {
					s.err = fmt.Errorf("%s: went while being read, five times (a collection rewriting the sets?): %w", s.oi.Name, s.err)
				}
			}
			return v, nil
		}
	}
}

// listManifestViewOnce lists the tombstones (tombs), the loose manifests
// (loose), then the sets: every set, or with first > 0 in a repository of
// format 4, the first that many by name, which are the newest
// (v.setsMore: there are others). A listing of the first sets that shows
// a set named in the older form lists them all.
func (r *Repository) listManifestViewOnce(ctx context.Context, loose, tombs bool, first int) (*manifestView, error) {
	v := &manifestView{loose: map[string]storage.ObjectInfo{}, tombs: map[string]storage.ObjectInfo{}}
	if tombs {
		if err := r.listTombstones(ctx, v); err != nil {
			return nil, err
		}
	}
	if loose {
		infos, err := r.manifestInfos(ctx)
		if err != nil {
			return nil, err
		}
		for _, oi := range infos {
			v.loose[strings.TrimPrefix(oi.Name, manifestsPrefix)] = oi
		}
	}
	if err := r.listSets(ctx, v, first); err != nil {
		return nil, err
	}
	return v, nil
}

// listSets lists the sets into v (replacing what it held): every set, or
// with first > 0 in a repository of format 4, the first that many by
// name, which are the newest (v.setsMore: there are others), unless that
// listing shows a set of the older form, or this handle saw one before
// (the rest are then in the order of their hashes).
func (r *Repository) listSets(ctx context.Context, v *manifestView, first int) error {
	v.sets, v.setsMore = nil, false
	listed := map[string]bool{}
	older := false
	add := func(oi storage.ObjectInfo) {
		if h, newest, ok := parseSetName(oi.Name); ok {
			v.sets = append(v.sets, &manifestSet{oi: oi, hash: h, newest: newest})
			listed[strings.TrimPrefix(oi.Name, manifestSetsPrefix)] = true
			older = older || !isOrderedSetName(oi.Name)
		}
	}
	whole := true
	if first > 0 && r.cfg.Version >= 4 && !r.olderSets.Load() {
		var page []storage.ObjectInfo
		more, err := storage.ListFirst(ctx, r.be, manifestSetsPrefix, first+1, func(oi storage.ObjectInfo) error {
			page = append(page, oi)
			return nil
		})
		if err != nil {
			return err
		}
		// a name that sorts before the first of the new form may be a set
		// of the older form, in the order of its hash
		whole = slices.ContainsFunc(page, func(oi storage.ObjectInfo) bool {
			return oi.Name != formatCanarySet && oi.Name < manifestSetsPrefix+string(orderedSetMark)
		})
		if !whole {
			for _, oi := range page {
				add(oi)
			}
			v.setsMore = more
		}
	}
	if whole {
		if err := r.be.List(ctx, manifestSetsPrefix, func(oi storage.ObjectInfo) error {
			add(oi)
			return nil
		}); err != nil {
			return err
		}
		// (only a whole listing says which cached sets are gone, and
		// whether any of the older form is left: a locked location,
		// which never names them again, then costs a command one listing
		// of the first sets, not one for each reading)
		r.cache.keep(cacheManifestSets, func(n string) bool { return listed[n] })
		r.olderSets.Store(older)
	}
	sort.Slice(v.sets, func(i, j int) bool {
		if v.sets[i].newest != v.sets[j].newest {
			return v.sets[i].newest > v.sets[j].newest
		}
		return v.sets[i].oi.Name < v.sets[j].oi.Name
	})
	return nil
}

// listTombstones lists and verifies the tombstones into v.
func (r *Repository) listTombstones(ctx context.Context, v *manifestView) error {
	var tombs []storage.ObjectInfo
	err := r.be.List(ctx, tombstonesPrefix, func(oi storage.ObjectInfo) error {
		if ValidBackupID(strings.TrimPrefix(oi.Name, tombstonesPrefix)) == nil {
			tombs = append(tombs, oi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(tombs) > 0 && !r.keys.CanRead() {
		// a write-only credential cannot tell a real tombstone from a
		// planted one; it reads no manifests anyway
		return nil
	}
	raws := make([][]byte, len(tombs))
	errs := make([]error, len(tombs))
	err = parallel(ctx, len(tombs), 8, func(i int) error {
		id := strings.TrimPrefix(tombs[i].Name, tombstonesPrefix)
		if b, ok := r.cache.get(cacheTombstones, id, func(b []byte) bool { return int64(len(b)) == tombs[i].Size }); ok {
			raws[i] = b
			return nil
		}
		raws[i], errs[i] = storage.ReadAll(ctx, r.be, tombs[i].Name)
		if errs[i] == nil {
			r.cache.put(cacheTombstones, id, raws[i])
		}
		return nil
	})
	if err != nil {
		return err
	}
	keepT := map[string]bool{}
	for i, oi := range tombs {
		id := strings.TrimPrefix(oi.Name, tombstonesPrefix)
		keepT[id] = true
		switch {
		case errors.Is(errs[i], storage.ErrNotFound):
			// removed since the listing, by a collection that found no
			// set holding its backup: dead all the same
			v.tombs[id] = oi
		case errs[i] != nil:
			return fmt.Errorf("reading %s: %w", oi.Name, errs[i])
		default:
			if err := verifyTombstone(r.keys, id, raws[i]); err != nil {
				v.problems = append(v.problems, err)
				r.cache.remove(cacheTombstones, id)
				continue
			}
			v.tombs[id] = oi
		}
	}
	r.cache.keep(cacheTombstones, func(n string) bool { return keepT[n] })
	return nil
}

// openSet reads a set (from the memo, the cache, or the storage) into
// s.entries, or records why it cannot in s.err (returned too).
func (r *Repository) openSet(ctx context.Context, s *manifestSet) error {
	if s.entries != nil {
		return nil
	}
	r.setMemo.mu.Lock()
	e, ok := r.setMemo.sets[s.oi.Name]
	r.setMemo.mu.Unlock()
	if ok {
		s.entries = e
		return nil
	}
	entries, cached := r.cachedSet(s)
	if !cached {
		raw, err := storage.ReadAll(ctx, r.be, s.oi.Name)
		if err != nil {
			s.err = fmt.Errorf("reading %s: %w", s.oi.Name, err)
			return s.err
		}
		if entries, err = decodeManifestSet(r.keys, s.oi.Name, raw); err != nil {
			s.err = err
			return err
		}
		r.putVerifiedSet(s.oi.Name, entries)
	}
	s.entries = entries
	r.setMemo.mu.Lock()
	if r.setMemo.sets == nil {
		r.setMemo.sets = map[string][]setEntry{}
	}
	r.setMemo.sets[s.oi.Name] = entries
	r.setMemo.mu.Unlock()
	return nil
}

// backupRef is where one backup's manifest is: loose, or in a set.
type backupRef struct {
	id    string
	loose *storage.ObjectInfo
	set   *manifestSet
	entry *setEntry
}

// refs is every backup of an opened view (tombstoned ones left out),
// sorted by id; a backup both loose and in a set (folded, the loose one
// not yet deleted) is taken from its set. Sets that could not be opened
// are returned as errors.
func (v *manifestView) refs() ([]backupRef, []error) {
	var errs []error
	byID := map[string]backupRef{}
	for _, s := range v.sets {
		if s.err != nil {
			errs = append(errs, s.err)
			continue
		}
		for i := range s.entries {
			e := &s.entries[i]
			if _, dead := v.tombs[e.id]; !dead {
				if _, dup := byID[e.id]; !dup {
					byID[e.id] = backupRef{id: e.id, set: s, entry: e}
				}
			}
		}
	}
	for id, oi := range v.loose {
		if _, dead := v.tombs[id]; dead {
			continue
		}
		if _, inSet := byID[id]; !inSet {
			oi := oi
			byID[id] = backupRef{id: id, loose: &oi}
		}
	}
	out := make([]backupRef, 0, len(byID))
	for _, ref := range byID {
		out = append(out, ref)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, errs
}

// load reads the manifest a ref names.
func (r *Repository) loadRef(ctx context.Context, ref backupRef) (*Manifest, error) {
	if ref.loose != nil {
		return r.loadListedManifest(ctx, *ref.loose)
	}
	return ref.entry.manifest(ctx, ref.set.oi.Name)
}

// saveTombstone marks id deleted.
func (r *Repository) saveTombstone(ctx context.Context, id string) error {
	raw, err := encodeTombstone(r.keys, id, time.Now())
	if err != nil {
		return err
	}
	if err := r.be.Put(ctx, tombstonesPrefix+id, bytes.NewReader(raw), int64(len(raw))); err != nil {
		return fmt.Errorf("backup %s not deleted: writing its tombstone: %w", id, err)
	}
	r.cache.put(cacheTombstones, id, raw)
	return nil
}

// ManifestCompaction reports what a collection did to the manifests.
type ManifestCompaction struct {
	// Folded: loose manifests now in a set.
	Folded int `json:"folded"`
	// SetsWritten, SetsRemoved: sets written, and sets they replaced.
	SetsWritten int `json:"sets_written"`
	SetsRemoved int `json:"sets_removed"`
	// Dropped: tombstoned backups taken out of sets.
	Dropped int `json:"dropped"`
	// TombstonesRemoved: tombstones no set needs any more.
	TombstonesRemoved int `json:"tombstones_removed"`
	// Sets: how many sets the repository holds now.
	Sets int `json:"sets"`
}

// compactManifests folds the view's loose manifests, and the sets that are
// small or hold deleted or duplicated backups, into new sets; it then
// deletes what the new sets replace, and the tombstones no set needs any
// more. It runs inside a collection that is the only one running, with
// the view its mark used. A failure at any step leaves every backup
// readable: new sets are stored before anything they replace is deleted.
func (r *Repository) compactManifests(ctx context.Context, v *manifestView, now time.Time, window time.Duration, valid func() error) (*ManifestCompaction, error) {
	res := &ManifestCompaction{}
	refs, errs := v.refs()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	seen := map[string]int{} // id -> sets holding it
	for _, s := range v.sets {
		for _, e := range s.entries {
			seen[e.id]++
		}
	}
	// Rewritten: sets holding deleted or duplicated backups, and small
	// sets when there is anything to fold or merge them with.
	var rewrite, smallClean []*manifestSet
	for _, s := range v.sets {
		switch {
		case setDirty(s, v, seen), r.cfg.Version >= 4 && !isOrderedSetName(s.oi.Name):
			// (a set of the older form is named again: listings of the
			// newest sets then stop listing them all)
			rewrite = append(rewrite, s)
		case len(s.entries) < manifestSetMax/2:
			smallClean = append(smallClean, s)
		}
	}
	if len(v.loose) > 0 || len(rewrite) > 0 || len(smallClean) > 1 {
		rewrite = append(rewrite, smallClean...)
	}
	ran := len(v.loose) > 0 || len(rewrite) > 0
	if ran {
		if err := r.upgradeFormat(ctx); err != nil {
			return nil, err
		}
		inRewrite := map[*manifestSet]bool{}
		for _, s := range rewrite {
			inRewrite[s] = true
		}
		// the live backups the new sets hold: every loose one, and those
		// of the sets being rewritten
		var entries []setEntry
		for _, ref := range refs {
			switch {
			case ref.loose != nil:
				m, js, err := r.loadListedManifestJSON(ctx, *ref.loose)
				if err != nil {
					return nil, err
				}
				entries = append(entries, setEntry{id: ref.id, js: js, bin: manifestBin(m)})
				res.Folded++
			case inRewrite[ref.set]:
				entries = append(entries, *ref.entry)
			default:
				// kept in a set that stays; a copy in a set being
				// rewritten is dropped with it
			}
		}
		for _, s := range rewrite {
			for _, e := range s.entries {
				if _, dead := v.tombs[e.id]; dead {
					res.Dropped++
				}
			}
		}
		// (stalled past its lease, a collection may have run meanwhile:
		// what this one read is not to be written back)
		if err := valid(); err != nil {
			return nil, err
		}
		n, err := r.storeManifestSets(ctx, entries)
		res.SetsWritten += n
		if err != nil {
			return nil, err
		}
		// Stored: now what they replace goes, while this collection is
		// still the only one (its registration has not lapsed).
		if err := valid(); err != nil {
			return nil, err
		}
		for _, s := range rewrite {
			if err := r.be.Delete(ctx, s.oi.Name); err == nil {
				res.SetsRemoved++
			} else if !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("deleting %s: %w", s.oi.Name, err)
			}
		}
		// (a tombstoned one too: its deletion did not get to remove it)
		for id, oi := range v.loose {
			if err := r.be.Delete(ctx, oi.Name); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("deleting %s: %w", oi.Name, err)
			}
			r.cache.remove(cacheManifests, id)
		}
	}
	// A tombstone whose backup a listed set held is written again (it
	// goes in a later collection: a reader that listed that set before it
	// was deleted still finds the tombstone). One no listed set held goes
	// once last written longer ago than the window; its backup's loose
	// manifest was deleted above.
	held := map[string]bool{}
	for _, s := range v.sets {
		for _, e := range s.entries {
			held[e.id] = true
		}
	}
	for id, oi := range v.tombs {
		if held[id] {
			if err := r.saveTombstone(ctx, id); err != nil {
				return nil, err
			}
			continue
		}
		if err := r.removeOldTombstone(ctx, id, oi, now, window, valid, res); err != nil {
			return nil, err
		}
	}
	res.Sets = len(v.sets) - res.SetsRemoved + res.SetsWritten
	return res, nil
}

// storeManifestSets stores entries (sorted by id, distinct) as sets of up
// to manifestSetMax, and reports how many it stored.
func (r *Repository) storeManifestSets(ctx context.Context, entries []setEntry) (int, error) {
	entries, err := materialize(ctx, entries)
	if err != nil {
		return 0, err
	}
	stored := 0
	for len(entries) > 0 {
		n := min(len(entries), manifestSetMax)
		name, raw, err := encodeManifestSet(r.keys, entries[:n])
		if err != nil {
			return stored, err
		}
		if r.cfg.Version >= 4 {
			name = orderedSetName(name)
		}
		if err := r.be.Put(ctx, name, bytes.NewReader(raw), int64(len(raw))); err != nil {
			return stored, fmt.Errorf("writing %s: %w", name, err)
		}
		r.putVerifiedSet(name, entries[:n])
		stored++
		entries = entries[n:]
	}
	return stored, nil
}

// foldLoose folds the loose manifests, when more than bound are listed,
// into a set, with the newest set when that one is small (so sets written
// this way grow to half a full one before a new one starts). It runs
// inside a collector registration that found no other collector (valid
// reports whether it still holds), as compactManifests does, but moves
// entries only: tombstoned backups are neither folded nor dropped from
// the set it rewrites, and no tombstone is touched, so what a reader sees
// is the same before, during and after (the new set is stored before what
// it replaces is deleted). It reports how many loose manifests it folded.
//
// Loose manifests the newest set already holds (a fold before could not
// delete them) are deleted first, and nothing is written when that fails:
// a storage that takes writes but refuses deletes gets one set more, not
// one a backup.
func (r *Repository) foldLoose(ctx context.Context, bound int, valid func() error) (int, error) {
	// (the newest set is all it reads: in format 4 the first sets are
	// listed, not all)
	v, err := r.listManifestViewOnce(ctx, true, true, setsFirst)
	if err != nil {
		return 0, err
	}
	var ids []string
	for id := range v.loose {
		if _, dead := v.tombs[id]; !dead {
			ids = append(ids, id)
		}
	}
	if len(ids) <= bound {
		return 0, nil
	}
	sort.Strings(ids)
	var entries []setEntry
	var replaced *manifestSet
	held := map[string]bool{}
	if len(v.sets) > 0 {
		// one that does not open (damaged, or planted by a host without
		// the full-access keys: check names it) is left as it is, and a
		// new set started
		s := v.sets[0]
		if err := r.openSet(ctx, s); errors.Is(err, storage.ErrNotFound) {
			return 0, nil // gone meanwhile: next time
		} else if err == nil {
			for _, e := range s.entries {
				held[e.id] = true
			}
			if len(s.entries) < manifestSetMax/2 {
				replaced = s
				entries = append(entries, s.entries...)
			}
		}
	}
	deleteLoose := func(ois []storage.ObjectInfo) error {
		for _, oi := range ois {
			if err := r.be.Delete(ctx, oi.Name); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("deleting %s: %w", oi.Name, err)
			}
			r.cache.remove(cacheManifests, strings.TrimPrefix(oi.Name, manifestsPrefix))
		}
		return nil
	}
	var done, fold []storage.ObjectInfo
	for _, id := range ids {
		if held[id] {
			done = append(done, v.loose[id])
		} else {
			fold = append(fold, v.loose[id])
		}
	}
	if len(done) > 0 {
		if err := valid(); err != nil {
			return 0, err
		}
		if err := deleteLoose(done); err != nil {
			return 0, err
		}
	}
	if len(fold) <= bound {
		r.looseSeen.Store(int64(len(v.loose)-len(done)) + 1)
		return len(done), nil
	}
	var folded []storage.ObjectInfo
	for _, oi := range fold {
		m, js, err := r.loadListedManifestJSON(ctx, oi)
		if err != nil {
			// unreadable, or gone: left where it is, for check to report
			// and a collection to judge
			continue
		}
		entries = append(entries, setEntry{id: strings.TrimPrefix(oi.Name, manifestsPrefix), js: js, bin: manifestBin(m)})
		folded = append(folded, oi)
	}
	if len(folded) == 0 {
		return len(done), nil
	}
	if err := r.upgradeFormat(ctx); err != nil {
		return len(done), err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].id < entries[j].id })
	// stalled past its lease (a suspended laptop), a collection may have
	// run meanwhile, dropped a deleted backup from the set read here and
	// then its tombstone: such a set must not be stored
	if err := valid(); err != nil {
		return len(done), err
	}
	if _, err := r.storeManifestSets(ctx, entries); errors.Is(err, errSetGone) {
		return len(done), nil // the set it grows went meanwhile: next time
	} else if err != nil {
		return len(done), err
	}
	// stored: what they replace goes, while no collection runs
	if err := valid(); err != nil {
		return len(done), err
	}
	if replaced != nil {
		if err := r.be.Delete(ctx, replaced.oi.Name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return len(done), fmt.Errorf("deleting %s: %w", replaced.oi.Name, err)
		}
	}
	if err := deleteLoose(folded); err != nil {
		return len(done), err
	}
	r.looseSeen.Store(int64(len(v.loose)-len(done)-len(folded)) + 1)
	return len(done) + len(folded), nil
}

// removeOldTombstone deletes the tombstone oi of backup id, which no set
// holds and whose loose manifest is gone, once it was last written longer
// ago than the window.
func (r *Repository) removeOldTombstone(ctx context.Context, id string, oi storage.ObjectInfo, now time.Time, window time.Duration,
	valid func() error, res *ManifestCompaction) error {
	if now.Sub(oi.ModTime) < max(window, tombstoneMinAge) {
		return nil
	}
	if err := valid(); err != nil {
		return err
	}
	if err := r.be.Delete(ctx, oi.Name); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("deleting %s: %w", oi.Name, err)
	}
	r.cache.remove(cacheTombstones, id)
	res.TombstonesRemoved++
	return nil
}

func setDirty(s *manifestSet, v *manifestView, seen map[string]int) bool {
	for _, e := range s.entries {
		if _, dead := v.tombs[e.id]; dead || seen[e.id] > 1 {
			return true
		}
	}
	return false
}

// formatCanary is the object that stops a version 1 gc with a handle
// opened before the upgrade; listings skip it.
const (
	formatCanary     = manifestsPrefix + "0-repository-format-2"
	formatCanaryText = "this repository is in format version 2 (manifest sets): upgrade backupd to read it\n"
	// (formatCanarySet's content)
	formatCanaryText4 = "this repository is in format version 4 (manifest sets named newest first): upgrade backupd to read it\n"
)

// upgradeFormat moves a version 1 repository to version 2 before its
// first set is written: a backupd that knows only version 1 would not see
// the backups in sets, and must refuse the repository rather than take
// their data for garbage.
func (r *Repository) upgradeFormat(ctx context.Context) error {
	if err := r.rereadConfig(ctx); err != nil || r.cfg.Version >= 2 {
		return err
	}
	// A backupd of version 1 that opened the repository before this (a
	// worker keeps its handle) does not read config again: it finds this
	// among the manifests, cannot read it, and its gc stops instead of
	// collecting the folded backups' data (review).
	if err := r.be.Put(ctx, formatCanary, strings.NewReader(formatCanaryText), int64(len(formatCanaryText))); err != nil {
		return fmt.Errorf("upgrading the repository format to version 2: %w", err)
	}
	// read again just before writing: an upgrade made meanwhile (repo
	// upgrade, to 3) is not written back to 2
	if err := r.rereadConfig(ctx); err != nil || r.cfg.Version >= 2 {
		return err
	}
	cfg := r.cfg
	cfg.Version = 2
	nb, _ := json.MarshalIndent(cfg, "", "  ")
	if err := r.be.Put(ctx, configName, bytes.NewReader(nb), int64(len(nb))); err != nil {
		return fmt.Errorf("upgrading the repository format to version 2: %w", err)
	}
	r.cfg.Version = 2
	return nil
}

// rereadConfig reads config again, refusing a format this backupd does not
// know and taking up an upgrade made through another handle.
func (r *Repository) rereadConfig(ctx context.Context) error {
	b, err := storage.ReadAll(ctx, r.be, configName)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("config: %w: %v", ErrCorrupt, err)
	}
	if cfg.ID != r.cfg.ID {
		return fmt.Errorf("config: the repository id changed from %s to %s under this handle", r.cfg.ID, cfg.ID)
	}
	if err := checkFormatVersion(cfg.Version); err != nil {
		return err
	}
	r.cfg.Version = max(r.cfg.Version, cfg.Version)
	return nil
}

// Upgrade moves the repository to the newest format (FormatVersion): from
// version 1, as the first folding collection would (upgradeFormat), then
// to 4: small files are stored in bundles (3), and manifest sets are named
// to list newest first (4; those of the older form are named again by the
// next collection, see formatCanarySet). A backupd that
// knows only older formats refuses the repository from then on; one that
// opened it before reads new index files as unknown and stops (its
// collections stop too: they find blobs no index file it read lists), so
// nothing it does loses data. It needs a full-access key. It returns the
// version before and after.
func (r *Repository) Upgrade(ctx context.Context) (from, to int, err error) {
	if r.key.Access != AccessFull || !r.keys.CanRead() {
		return 0, 0, fmt.Errorf("upgrading the repository format needs a full-access key: %w", ErrWriteOnly)
	}
	if err := r.rereadConfig(ctx); err != nil {
		return 0, 0, err
	}
	from = r.cfg.Version
	if from >= FormatVersion {
		return from, from, nil
	}
	if err := r.upgradeFormat(ctx); err != nil {
		return from, r.cfg.Version, err
	}
	// A backupd of version 3 that opened the repository before this does
	// not see sets of the new form: the canary is a set it cannot read,
	// which stops its collections (they would take the data of backups
	// they do not see for garbage). The sets of the older form are named
	// again by the next collection.
	if r.cfg.Version < 4 {
		if err := r.be.Put(ctx, formatCanarySet, strings.NewReader(formatCanaryText4), int64(len(formatCanaryText4))); err != nil {
			return from, r.cfg.Version, fmt.Errorf("upgrading the repository format to version %d: %w", FormatVersion, err)
		}
	}
	cfg := r.cfg
	cfg.Version = FormatVersion
	nb, _ := json.MarshalIndent(cfg, "", "  ")
	if err := r.be.Put(ctx, configName, bytes.NewReader(nb), int64(len(nb))); err != nil {
		return from, r.cfg.Version, fmt.Errorf("upgrading the repository format to version %d: %w", FormatVersion, err)
	}
	r.cfg.Version = FormatVersion
	return from, FormatVersion, nil
}
