// Package repository is the on-storage format of backupd: content-defined
// chunks, compressed and encrypted into blobs, blobs packed into pack files,
// an index from blob to pack, signed and encrypted manifests, and the keys
// that open them. It stores everything through a storage.Backend and knows
// nothing of Temporal or HTTP.
//
// Layout of a repository on its backend:
//
//	config                 plaintext JSON: format version, repository id
//	keys/<key-id>          the Keys, wrapped by one credential each
//	data/<xx>/<pack-id>    packs (id = SHA-256 of the pack's bytes)
//	index/<index-id>       encrypted index files (id = SHA-256 of the bytes)
//	manifests/<backup-id>  one signed, encrypted manifest per backup
//	manifest-sets/n<newest backup id, mirrored>~<sha256>
//	                       manifests folded together by gc, named to list
//	                       newest first (format 4; before, <sha256>-<newest
//	                       backup id>; manifestset.go)
//	tombstones/<backup-id> deleted backups, until no set holds them
//	gc/<id>                packs condemned by garbage collection, with times
package repository

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"backupd/storage"
)

// FormatVersion is the repository format this code creates. Version 2
// added manifest sets and tombstones (manifestset.go); version 1
// repositories are read, and moved to 2 by the first gc that folds
// manifests. Version 3 stores small data blobs in bundles (bundle.go);
// repositories of versions 1 and 2 are read and written without them.
// Version 4 names manifest sets so that they list newest first
// (manifestset.go): a listing of the newest backups lists a few sets, not
// all; repositories of older versions list them all.
const FormatVersion = 4

// checkFormatVersion refuses a format this backupd does not know.
func checkFormatVersion(v int) error {
	if v < 1 || v > FormatVersion {
		return fmt.Errorf("repository format version %d is not supported by this backupd (it knows versions 1 to %d): use a backupd at least as new as the one that wrote it", v, FormatVersion)
	}
	return nil
}

// Config is the plaintext config object.
type Config struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Chunker string    `json:"chunker"`
}

const configName = "config"

// ErrNotInitialized: the location holds no repository.
var ErrNotInitialized = errors.New("no backupd repository at this location (run 'backupd repo init')")

// ErrAlreadyInitialized: init on a location that holds one.
var ErrAlreadyInitialized = errors.New("a backupd repository already exists at this location")

// Repository is an open repository. It is safe for concurrent use: many
// goroutines may save blobs at once; uploads run in the background until
// Flush.
type Repository struct {
	be        storage.Backend
	cfg       Config
	keys      *Keys
	key       *KeyEntry
	ids       *idHasher
	gear      *Gear
	indexAEAD cipher.AEAD
	idx       *Index

	compression Compression
	uploaders   int

	// writer state
	wmu          sync.Mutex
	sealer       *sealer
	pending      map[ID]int64 // blobs being stored: their stored length (0 until sealed)
	pendingRefs  map[ID]int   // uses of a pending blob seen before it was sealed
	packers      map[lane]*packBuilder
	open         map[openKey]*bundle // bundles being filled (bundle.go)
	repacking    bool                // bundles are compressed at the stronger level (repack.go)
	uploadCh     chan *packBuilder
	uploadWG     sync.WaitGroup
	uploadErr    error
	sessionPacks []IndexPack
	sessionIndex []ID

	// OnPackCommitted, when set, is called after a pack and the index file
	// naming its blobs are both stored: the unit a resumable job
	// checkpoints.
	OnPackCommitted func(PackCommit)

	stats    writeStats
	deps     dependencies     // packs this session's data depends on (writers.go)
	regs     registrations    // open registrations made through this handle (writers.go)
	sessions sync.Map         // ephemeral public key (string) -> *openedSession
	skeys    sessionKeys      // the session keys kept in the cache (sessioncache.go)
	dataKey  *ecdh.PrivateKey // parsed once; nil for a write-only key
	// the key of the cache's verified manifests (see manifestcache.go)
	// olderSets: the last whole listing of the sets showed one named in
	// the form before format 4 (listSets)
	olderSets  atomic.Bool
	vpacksOnce sync.Once
	vpacksAEAD cipher.AEAD // verifiedPacksAEAD
	mcacheOnce sync.Once
	mcacheAEAD cipher.AEAD
	trees      treeCache
	reloadSem  chan struct{} // one index reload at a time after a pack was found gone
	goneAt     map[ID]uint64 // under reloadSem: packs still indexed after such a reload, and the index generation then
	cache      *Cache        // nil: none
	setMemo    setMemo       // manifest sets opened through this handle
	bundleMemo bundleMemo    // bundles decoded for single-member reads
	// looseSeen: 1 + the loose manifests this handle last listed, and
	// saved since (0: it never listed them); see Compact
	looseSeen atomic.Int64
}

// PackCommit describes one committed pack.
type PackCommit struct {
	Pack       ID
	Index      ID
	Blobs      int
	StoredSize int64
}

type writeStats struct {
	blobsAdded, bytesAdded, storedAdded, packsWritten atomic.Int64
	dataAdded, storedReferenced                       atomic.Int64
}

// WriteStats reports what this Repository value has added so far.
type WriteStats struct {
	BlobsAdded, BytesAdded, StoredAdded, PacksWritten int64
	// DataAdded: the plaintext bytes of the new data blobs (file and dump
	// content; BytesAdded also counts trees).
	DataAdded int64
	// StoredReferenced: the stored (compressed, encrypted) length of every
	// blob saved or reused, new or already present, once per use: what
	// the backup takes in storage before deduplication (its trees
	// included, as StoredAdded includes the new ones).
	StoredReferenced int64
}

// WriteStats returns counters of blobs and bytes this session added.
func (r *Repository) WriteStats() WriteStats {
	return WriteStats{BlobsAdded: r.stats.blobsAdded.Load(), BytesAdded: r.stats.bytesAdded.Load(),
		StoredAdded: r.stats.storedAdded.Load(), PacksWritten: r.stats.packsWritten.Load(),
		DataAdded: r.stats.dataAdded.Load(), StoredReferenced: r.stats.storedReferenced.Load()}
}

// referenced counts a use of a blob stored with n bytes.
func (r *Repository) referenced(_ BlobType, n int64) {
	r.stats.storedReferenced.Add(n)
}

// InitOptions configure a new repository.
type InitOptions struct {
	Wrapping Wrapping
	// Keys, when set, reuses existing key material (from another location of
	// the same service), so blob ids match and copies move only missing
	// blobs. Otherwise fresh keys are generated.
	Keys *Keys
}

// Init creates a repository on be.
func Init(ctx context.Context, be storage.Backend, opts InitOptions) (*Repository, error) {
	if _, err := be.Stat(ctx, configName); err == nil {
		return nil, ErrAlreadyInitialized
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	keys := opts.Keys
	if keys == nil {
		var err error
		if keys, err = NewKeys(); err != nil {
			return nil, err
		}
	}
	if err := keys.validate(); err != nil {
		return nil, err
	}
	entry, err := wrapKeys(keys, opts.Wrapping, 1)
	if err != nil {
		return nil, err
	}
	cfg := Config{Version: FormatVersion, ID: fmt.Sprintf("%x", randomBytes(16)), Created: time.Now().UTC(), Chunker: "fastcdc-gear-1m"}
	if err := saveKeyEntry(ctx, be, entry); err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	// config last: a location is a repository once config exists.
	if err := be.Put(ctx, configName, bytes.NewReader(b), int64(len(b))); err != nil {
		return nil, err
	}
	return newRepository(be, cfg, keys, entry)
}

// Open opens the repository on be with any matching credential.
func Open(ctx context.Context, be storage.Backend, creds Credentials) (*Repository, error) {
	b, err := storage.ReadAll(ctx, be, configName)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotInitialized
	} else if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w: %v", ErrCorrupt, err)
	}
	if err := checkFormatVersion(cfg.Version); err != nil {
		return nil, err
	}
	if creds.empty() {
		return nil, errors.New("no credential given: set BACKUPD_PASSWORD, --password-file, --rsa-private-key or --pgp-private-key")
	}
	entries, err := listKeyEntries(ctx, be)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, errors.New("repository has no key entries: its keys/ directory is missing or empty")
	}
	// Prefer full-access entries so a credential that wraps both opens for reading.
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Access == AccessFull && entries[j].Access != AccessFull })
	// A damaged (or planted) entry must not lock everyone out: try every
	// entry, and report entry errors only when none opens.
	var errs []error
	for _, e := range entries {
		k, err := e.unwrap(creds)
		if errors.Is(err, ErrNoMatchingKey) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := newRepository(be, cfg, k, e)
		if err == nil && r.KeyRevoked(ctx, e.ID) {
			// removed from a locked location, where it lingers until its
			// lock ends (locks.go)
			errs = append(errs, fmt.Errorf("key %s was revoked", e.ID))
			continue
		}
		return r, err
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w (%v)", ErrNoMatchingKey, errors.Join(errs...))
	}
	return nil, ErrNoMatchingKey
}

func newRepository(be storage.Backend, cfg Config, keys *Keys, key *KeyEntry) (*Repository, error) {
	ia, err := newAEAD(keys.IndexKey)
	if err != nil {
		return nil, err
	}
	// a key that does not parse is refused where a session is opened
	dataKey, _ := parseDataKey(keys.DataPrivate)
	return &Repository{
		be: be, cfg: cfg, keys: keys, key: key, dataKey: dataKey,
		ids: newIDHasher(keys.IDKey), gear: NewGear(keys.ChunkerKey), indexAEAD: ia,
		idx: newIndex(), compression: CompressZstd, uploaders: 3, reloadSem: make(chan struct{}, 1),
		pending: map[ID]int64{}, pendingRefs: map[ID]int{}, packers: map[lane]*packBuilder{}, open: map[openKey]*bundle{},
	}, nil
}

// Session returns another handle on the same repository, sharing its
// storage and keys (no key derivation) but with its own index and writer
// state: independent jobs write through separate sessions, so one job's
// Flush or Abort never touches another's packs.
func (r *Repository) Session() *Repository {
	n, _ := newRepository(r.be, r.cfg, r.keys, r.key)
	n.uploaders = r.uploaders
	n.cache = r.cache
	return n
}

// SetCache makes this handle (and the sessions made from it) keep index
// files, tree packs and manifests in c (cache.go); nil turns it off.
func (r *Repository) SetCache(c *Cache) { r.cache = c }

// Cache is the local cache in use, or nil.
func (r *Repository) Cache() *Cache { return r.cache }

// Backend returns the storage the repository lives on.
func (r *Repository) Backend() storage.Backend { return r.be }

// Config returns the repository's plaintext config.
func (r *Repository) Config() Config { return r.cfg }

// Keys returns the key material (to initialise a sibling repository).
func (r *Repository) Keys() *Keys { return r.keys }

// KeyEntry is the key entry this repository was opened with.
func (r *Repository) KeyEntry() *KeyEntry { return r.key }

// Gear is the chunker table for this repository.
func (r *Repository) Gear() *Gear { return r.gear }

// Index returns the in-memory index.
func (r *Repository) Index() *Index { return r.idx }

// BlobID computes the id data would have in this repository.
func (r *Repository) BlobID(data []byte) ID { return r.ids.Sum(data) }

// SetCompression selects the codec for new blobs.
func (r *Repository) SetCompression(c Compression) { r.compression = c }

// SetUploaders sets how many packs upload at once (default 2).
func (r *Repository) SetUploaders(n int) {
	if n > 0 {
		r.uploaders = n
	}
}

func packName(id ID) string { s := id.String(); return "data/" + s[:2] + "/" + s }

// PackName is the object name of a pack.
func PackName(id ID) string { return packName(id) }

// LoadIndex reads every index file. Safe to call again: it loads only new
// files — unless a file it loaded is gone. Then another process rewrote
// the index (a garbage collection drops the packs it deletes; another
// job merges its own files), and the entries read from the gone file may
// name packs that no longer exist: the index is read again from scratch.
// A writer registers (BeginWrite) and then calls LoadIndex, so it never
// deduplicates against a pack a collection deleted before it registered
// (it kept doing so from entries loaded earlier, and a backup's commit
// could land between the collection's last look and its deletions: the
// soak found backups committed over deleted trees and chunks).
func (r *Repository) LoadIndex(ctx context.Context) error {
	// A file gone between the listing and its read was merged into a
	// new one (writers merge past IndexFileBound): list again to read that.
	for try := 0; ; try++ {
		vanished, err := r.loadIndexOnce(ctx)
		if err != nil || !vanished || try == 4 {
			return err
		}
	}
}

// loadWholeIndex is LoadIndex for a command that uses the whole index (a
// collection, a repair): a snapshot's buckets are all decoded now, and
// one found damaged is left for the index files.
func (r *Repository) loadWholeIndex(ctx context.Context) error {
	for try := 0; ; try++ {
		if err := r.LoadIndex(ctx); err != nil {
			return err
		}
		err := r.idx.decodeAll()
		if err == nil || try == 2 {
			return err
		}
	}
}

func (r *Repository) loadIndexOnce(ctx context.Context) (vanished bool, err error) {
	// The packs collections condemned (not deduplicated against): read
	// before the index is listed, once per list into the local cache.
	condemned, err := r.condemnedPacks(ctx)
	if err != nil {
		return false, err
	}
	var names []ID
	listed := map[ID]bool{}
	err = r.be.List(ctx, "index/", func(oi storage.ObjectInfo) error {
		id, err := ParseID(strings.TrimPrefix(oi.Name, "index/"))
		if err != nil {
			return nil // not ours; the checker reports it
		}
		listed[id] = true
		r.idx.mu.RLock()
		loaded := r.idx.files[id]
		r.idx.mu.RUnlock()
		if !loaded {
			names = append(names, id)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("listing index: %w", err)
	}
	r.cache.keep(cacheIndex, func(n string) bool {
		id, err := ParseID(n)
		return err == nil && listed[id]
	})
	r.idx.mu.RLock()
	// a bucket of the snapshot it was opened from did not decode: read
	// again, as when a file is gone, and from the files (a snapshot
	// written since may hold a copy of that bucket; review)
	damaged := r.idx.blobs.damage() != nil
	gone := damaged
	for id := range r.idx.files {
		if !listed[id] {
			gone = true
			break
		}
	}
	r.idx.mu.RUnlock()
	// Rewritten elsewhere: read again into a fresh index, swapped in
	// whole, so goroutines reading meanwhile (a restore's workers) keep
	// finding their blobs.
	ix := r.idx
	r.idx.mu.RLock()
	empty := len(r.idx.packs) == 0
	r.idx.mu.RUnlock()
	// a cached snapshot of what it held (see indexsnap.go), when this
	// handle starts from nothing; then only the files it lacks are read
	snapped := false
	if gone || empty {
		if damaged {
			ix = newIndex()
		} else if snap := r.loadIndexSnapshot(listed); snap != nil {
			ix, snapped = snap, true
		} else if gone {
			ix = newIndex()
		}
		if ix != r.idx {
			names = names[:0]
			for id := range listed {
				if !ix.files[id] {
					names = append(names, id)
				}
			}
		}
	}
	var vanishedAny atomic.Bool
	readBlobs := 0
	// files read are added in batches (a sort and a merge each), the
	// batches growing with the index so that each entry is copied a few
	// times at most
	var pending []IndexPack
	var pendingFiles []ID
	pendingBlobs := 0
	flush := func() {
		ix.addPacksLocked(pending)
		for _, id := range pendingFiles {
			ix.files[id] = true
		}
		pending, pendingFiles, pendingBlobs = nil, nil, 0
	}
	err = parallel(ctx, len(names), 4, func(i int) error {
		f, err := r.readIndexFile(ctx, names[i])
		if errors.Is(err, storage.ErrNotFound) {
			vanishedAny.Store(true) // superseded and removed since the listing
			return nil
		}
		if err != nil {
			return err
		}
		ix.mu.Lock()
		defer ix.mu.Unlock()
		pending = append(pending, f.Packs...)
		pendingFiles = append(pendingFiles, names[i])
		for _, p := range f.Packs {
			pendingBlobs += len(p.Blobs)
			readBlobs += len(p.Blobs)
		}
		if pendingBlobs >= max(1<<16, ix.blobs.len()/4) {
			flush()
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	ix.mu.Lock()
	flush()
	ix.mu.Unlock()
	excludeCondemned(ix, condemned)
	switch {
	case gone:
		r.idx.replace(ix)
	case snapped:
		// the handle was empty; what it was given meanwhile (a pack
		// this process stored) is kept
		if err := r.idx.replaceOrAbsorb(ix); err != nil {
			// damaged (and removed): read the files instead
			return true, nil
		}
	}
	// Written (a delta when one can say what changed) when enough was
	// read: a delta written at every load that read a file or two cost
	// each backup 1 to 2 ms, where the snapshot written every fourth
	// backup or so had left most backups without a write (bench case D:
	// the median backup after 10,000 took 2 to 3 ms longer). After a
	// merge, Compact writes one.
	if len(names) > 0 && (!snapped || len(names) >= indexSnapFiles || readBlobs*indexSnapShare >= r.idx.Len()) {
		r.saveIndexSnapshot(r.idx)
	}
	if r.cache != nil {
		r.idx.mu.RLock()
		r.cache.keep(cacheTrees, func(n string) bool {
			id, err := ParseID(n)
			_, ok := r.idx.packByID[id]
			return err == nil && ok
		})
		r.idx.mu.RUnlock()
	}
	return vanishedAny.Load(), nil
}

func (r *Repository) readIndexFile(ctx context.Context, id ID) (*IndexFile, error) {
	raw, cached := r.cache.getByHash(cacheIndex, id)
	if !cached {
		var err error
		if raw, err = storage.ReadAll(ctx, r.be, "index/"+id.String()); err != nil {
			return nil, err
		}
		if sha256.Sum256(raw) != id {
			return nil, fmt.Errorf("index file %s: %w: content does not match its name", id.Short(), ErrCorrupt)
		}
		r.cache.put(cacheIndex, id.String(), raw)
	}
	f, err := decodeIndexFile(r.indexAEAD, raw)
	if err != nil {
		return nil, fmt.Errorf("index file %s: %w", id.Short(), err)
	}
	return f, nil
}

// writeIndexFile stores f and marks it loaded; with add, its packs are
// added to the index in the same step (an index file marked loaded before
// its packs are in could be saved so in a snapshot, and its packs then
// never read again).
func (r *Repository) writeIndexFile(ctx context.Context, f *IndexFile, add bool) (ID, error) {
	raw := encodeIndexFile(r.indexAEAD, f)
	id := ID(sha256.Sum256(raw))
	if err := r.be.Put(ctx, "index/"+id.String(), bytes.NewReader(raw), int64(len(raw))); err != nil {
		return id, fmt.Errorf("writing index: %w", err)
	}
	r.cache.put(cacheIndex, id.String(), raw)
	r.idx.mu.Lock()
	if add {
		for _, p := range f.Packs {
			r.idx.addPackLocked(p)
		}
	}
	r.idx.files[id] = true
	r.idx.mu.Unlock()
	return id, nil
}

// Has reports whether a blob is stored (and not condemned) or being stored.
func (r *Repository) Has(id ID) bool {
	if p, ok := r.idx.dedupablePack(id); ok {
		r.deps.add(p)
		return true
	}
	r.wmu.Lock()
	_, ok := r.pending[id]
	r.wmu.Unlock()
	return ok
}

// SaveBlob stores data as a blob of type t unless the repository already has
// it. It returns the blob's id and whether it was new. The blob is durable
// only after Flush (or OnPackCommitted naming its pack).
func (r *Repository) SaveBlob(ctx context.Context, t BlobType, data []byte) (ID, bool, error) {
	id := r.ids.Sum(data)
	added, err := r.saveBlobWithID(ctx, t, id, data)
	return id, added, err
}

func (r *Repository) saveBlobWithID(ctx context.Context, t BlobType, id ID, data []byte) (bool, error) {
	return r.saveIn(ctx, lane{typ: t}, id, data)
}

// lane: the packs a blob is stored in. Packs hold blobs of one type, and
// repack keeps the blobs only older backups use (short: they go when
// those backups do) in packs apart from the blobs the newest use.
type lane struct {
	typ   BlobType
	short bool
}

// saveIn is saveBlobWithID into the packs of lane ln.
func (r *Repository) saveIn(ctx context.Context, ln lane, id ID, data []byte) (bool, error) {
	t := ln.typ
	// incompressible ones go to a bundle stored raw (see openKey)
	if t == DataBlob && len(data) < bundleMember && r.bundles() {
		return r.saveMember(ctx, ln, id, data, r.compression != CompressNone && incompressible(data))
	}
	c := r.compression
	return r.saveEncoded(ctx, ln, id, len(data), func(dst []byte) []byte { return r.compressBlob(dst, t, c, data) })
}

// compressBlob encodes a blob stored on its own. With bundles, a data
// blob that is not bundled is a chunk of a large file: the fast level
// compresses those almost as well (the stronger ones paid for small files).
//
// Trees get the fast level too. A tree is a listing whose entries repeat
// each other's field names and values, which the fast level finds as well
// as the stronger one: the Go toolchain's largest directory (2,049
// entries, 580 KB) compressed to 37.9 KB at the fastest level and 38.6 KB
// at the "better" one, in 0.6 against 1.5 ms. In a backup the stronger
// level's 4 MB match table, cold beside the file system walk, cost more:
// the 168 trees (2.5 MB) a 1%-changed re-backup of that tree writes took
// 21-34 ms to compress against 69-186 ms, and the whole backup 0.335 s
// against 0.37 s (medians of six, interleaved, cold caches).
func (r *Repository) compressBlob(dst []byte, t BlobType, c Compression, data []byte) []byte {
	if t == TreeBlob || t == DataBlob && r.bundles() {
		return compressClass(dst, c, data, zstdFast)
	}
	return compress(dst, c, data)
}

// saveEncoded stores a blob of rawLen plaintext bytes unless the
// repository has it; encode appends its encoded form (codec byte and
// payload) to dst. Repack passes blobs on in the form they were stored.
func (r *Repository) saveEncoded(ctx context.Context, ln lane, id ID, rawLen int, encode func(dst []byte) []byte) (bool, error) {
	t := ln.typ
	s, err := r.claim(t, id)
	if s == nil {
		return false, err
	}
	pool := blobPool(rawLen)
	pb, sb := pool.Get().(*[]byte), pool.Get().(*[]byte)
	plain := encode((*pb)[:0])
	sealed := seal(s.aead, (*sb)[:0], plain, blobAD(t, id))
	*pb, *sb = plain[:0], sealed[:0]
	pool.Put(pb)
	defer pool.Put(sb) // after add has copied it into the pack
	r.stats.blobsAdded.Add(1)
	r.stats.bytesAdded.Add(int64(rawLen))
	if t == DataBlob {
		r.stats.dataAdded.Add(int64(rawLen))
	}
	return true, r.addSealed(ctx, s, ln, sealed, []PackEntry{{Type: t, ID: id, Length: uint32(len(sealed)), RawLength: uint32(rawLen)}})
}

// useStored counts a use of blob id when it is stored and its pack not
// condemned, recording the pack for the commit's check; otherwise it
// records nothing and reports false.
func (r *Repository) useStored(t BlobType, id ID) bool {
	p, n, ok := r.idx.dedupable(id)
	if !ok {
		return false
	}
	r.deps.add(p)
	r.referenced(t, n)
	return true
}

// claim makes blob id pending, to be stored by the caller with the sealer
// it returns. It returns no sealer when the blob is stored or being
// stored already (the use is counted), or on an error.
func (r *Repository) claim(t BlobType, id ID) (*sealer, error) {
	if r.useStored(t, id) {
		return nil, nil
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.uploadErr != nil {
		return nil, r.uploadErr
	}
	if n, ok := r.pending[id]; ok {
		if n == 0 { // still being sealed: counted when it is
			r.pendingRefs[id]++
		}
		r.referenced(t, n)
		return nil, nil
	}
	if r.sealer == nil {
		s, err := newSealer(r.keys.DataPublic)
		if err != nil {
			return nil, err
		}
		r.sealer = s
		r.startUploaders()
	}
	r.pending[id] = 0
	return r.sealer, nil
}

// addSealed appends a sealed item (a blob, or a bundle) to the open pack
// of lane ln; entries are its blobs, their offsets set here.
// s is the sealer the item was sealed with: its pack's.
func (r *Repository) addSealed(ctx context.Context, s *sealer, ln lane, sealed []byte, entries []PackEntry) error {
	t := ln.typ
	r.wmu.Lock()
	// An item that would take the pack past its target size (or its
	// header past its budget) closes the pack first, so pack buffers
	// never grow past TargetPackSize plus a header.
	var full *packBuilder
	p := r.packers[ln]
	if p != nil && (!p.fits(len(sealed), entries) || p.sealer != s) {
		full = p
		p = nil
	}
	if p == nil {
		p = newPackBuilder(t, s)
		r.packers[ln] = p
	}
	p.add(sealed, entries)
	for _, e := range entries {
		n := e.Stored() // at least 1: 0 in pending means not sealed yet
		r.pending[e.ID] = n
		uses := 1 + int64(r.pendingRefs[e.ID])
		delete(r.pendingRefs, e.ID)
		r.referenced(t, uses*n)
	}
	r.wmu.Unlock()
	r.stats.storedAdded.Add(int64(len(sealed)))
	if full != nil {
		select {
		case r.uploadCh <- full:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *Repository) startUploaders() {
	r.uploadCh = make(chan *packBuilder)
	for i := 0; i < r.uploaders; i++ {
		r.uploadWG.Add(1)
		go func() {
			defer r.uploadWG.Done()
			for p := range r.uploadCh {
				if err := r.uploadPack(p); err != nil {
					r.wmu.Lock()
					if r.uploadErr == nil {
						r.uploadErr = err
					}
					r.wmu.Unlock()
				}
			}
		}()
	}
}

// uploadPack stores a finished pack and an index file naming its blobs.
// Uploads do not take the caller's context: a pack that began uploading is
// finished (or fails) so no half state is left; cancellation stops the
// producers instead.
func (r *Repository) uploadPack(p *packBuilder) error {
	defer p.release()
	r.wmu.Lock()
	failed := r.uploadErr != nil
	r.wmu.Unlock()
	if failed {
		return nil
	}
	ctx := context.Background()
	s := p.sealer
	buf := p.finish(s)
	id := ID(sha256.Sum256(buf))
	if err := r.be.Put(ctx, packName(id), bytes.NewReader(buf), int64(len(buf))); err != nil {
		return fmt.Errorf("uploading pack %s: %w", id.Short(), err)
	}
	r.deps.add(id)
	if p.typ == TreeBlob {
		// the next backup reads these trees as its parent's: from the cache
		r.cache.put(cacheTrees, id.String(), buf)
	}
	ip := IndexPack{ID: id, EphPublic: s.ephPublic, Blobs: p.entries}
	if err := r.registrationsValid(); err != nil {
		return fmt.Errorf("pack %s stored, not indexed: %w", id.Short(), err)
	}
	ixID, err := r.writeIndexFile(ctx, &IndexFile{Packs: []IndexPack{ip}}, true)
	if err != nil {
		return err
	}
	r.wmu.Lock()
	for _, e := range p.entries {
		delete(r.pending, e.ID)
	}
	r.sessionPacks = append(r.sessionPacks, ip)
	r.sessionIndex = append(r.sessionIndex, ixID)
	var rollPacks []IndexPack
	var rollFiles []ID
	if len(r.sessionIndex) >= sessionIndexRoll {
		rollPacks, rollFiles = r.sessionPacks, r.sessionIndex
		r.sessionPacks, r.sessionIndex = nil, nil
	}
	r.wmu.Unlock()
	r.stats.packsWritten.Add(1)
	if r.OnPackCommitted != nil {
		r.OnPackCommitted(PackCommit{Pack: id, Index: ixID, Blobs: len(p.entries), StoredSize: int64(len(buf))})
	}
	if rollFiles != nil {
		return r.compactIndex(ctx, rollPacks, rollFiles)
	}
	return nil
}

// sessionIndexRoll: every this many packs, a writing session merges their
// index files into one and forgets their entries, so what it holds for the
// final merge does not grow with the backup.
var sessionIndexRoll = 16

// Buffers are pooled: a backup otherwise allocates several times its data
// size in short-lived compression, encryption and pack buffers, and the
// garbage collector's work (or the heap it lets grow) shows in time and RSS.
var (
	smallBlobBufs  = sync.Pool{New: func() any { b := make([]byte, 0, smallBufSize); return &b }}
	mediumBlobBufs = sync.Pool{New: func() any { b := make([]byte, 0, mediumBufSize); return &b }}
	blobBufs       = sync.Pool{New: func() any { b := make([]byte, 0, MaxChunkSize+MaxChunkSize/8); return &b }}
)

// Three sizes of blob buffer: small files, trees (a directory of a few
// thousand entries: a chunk-sized buffer for each of them was the largest
// use of memory when backing up many small files), and chunks.
const (
	smallBufSize  = 64 << 10
	mediumBufSize = 1 << 20
)

func blobPool(n int) *sync.Pool {
	switch need := n + n/8 + 64; {
	case need <= smallBufSize:
		return &smallBlobBufs
	case need <= mediumBufSize:
		return &mediumBlobBufs
	}
	return &blobBufs
}

// Flush writes the open packs, waits for all uploads, and merges this
// session's per-pack index files into one. After Flush returns nil, every
// blob saved so far is durable and indexed.
func (r *Repository) Flush(ctx context.Context) error {
	// the keys of the packs the backup read its parent's trees from, for
	// the next one
	defer r.saveSessionKeys()
	if err := r.flushBundles(ctx); err != nil {
		// nothing of the session may look stored
		r.Abort()
		return err
	}
	r.wmu.Lock()
	if r.sealer == nil {
		r.wmu.Unlock()
		return nil
	}
	var open []*packBuilder
	for t, p := range r.packers {
		open = append(open, p)
		delete(r.packers, t)
	}
	ch := r.uploadCh
	r.wmu.Unlock()
	for _, p := range open {
		ch <- p
	}
	close(ch)
	r.uploadWG.Wait()

	r.wmu.Lock()
	err := r.uploadErr
	packs, files := r.sessionPacks, r.sessionIndex
	r.sessionPacks, r.sessionIndex = nil, nil
	r.sealer, r.uploadErr = nil, nil
	if err != nil {
		// blobs of packs that never got stored must not look present
		r.pending, r.pendingRefs = map[ID]int64{}, map[ID]int{}
	}
	r.wmu.Unlock()
	if err != nil {
		return err
	}
	return r.compactIndex(ctx, packs, files)
}

const compactMinFiles = 4

// compactIndex replaces several index files by one that supersedes them.
// The new file is written before the old ones are removed, so a crash in
// between leaves duplicates, never gaps.
func (r *Repository) compactIndex(ctx context.Context, packs []IndexPack, files []ID) error {
	// A small backup's two or three index files are left as they are (a
	// merge would cost more writes than it saves reads); garbage
	// collection merges everything into one file anyway.
	if len(files) < compactMinFiles {
		return nil
	}
	// A write-only host leaves it to the server's collection: a host
	// cannot delete what it stored (its storage refuses), and needs not.
	if !r.keys.CanRead() {
		return nil
	}
	// the files merged may be gone with their packs (registrationsValid)
	if err := r.registrationsValid(); err != nil {
		return err
	}
	if _, err := r.writeIndexFile(ctx, &IndexFile{Supersedes: files, Packs: packs}, false); err != nil {
		return err
	}
	for _, f := range files {
		if err := r.be.Delete(ctx, "index/"+f.String()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("removing superseded index %s: %w", f.Short(), err)
		}
		r.idx.mu.Lock()
		delete(r.idx.files, f)
		r.idx.mu.Unlock()
	}
	return nil
}

// Abort stops a writing session without flushing: blobs saved but not yet
// committed are dropped (packs already committed stay; garbage collection
// removes them if no manifest comes to reference them).
func (r *Repository) Abort() {
	r.wmu.Lock()
	clear(r.open)
	if r.sealer == nil {
		r.wmu.Unlock()
		return
	}
	r.uploadErr = errors.New("aborted")
	for t, p := range r.packers {
		p.release()
		delete(r.packers, t)
	}
	ch := r.uploadCh
	r.wmu.Unlock()
	close(ch)
	r.uploadWG.Wait()
	r.wmu.Lock()
	r.sealer, r.uploadErr = nil, nil
	r.pending, r.pendingRefs = map[ID]int64{}, map[ID]int{}
	r.sessionPacks, r.sessionIndex = nil, nil
	r.wmu.Unlock()
}

func (r *Repository) session(eph []byte) (cipher.AEAD, error) { return r.sessionFor(eph, false) }

// sessionFor is session; with kept, the key is looked up in, and added
// to, the session keys the cache keeps (sessioncache.go): for the packs of
// trees only, which the next backup reads again (the data packs a restore
// or a repack reads would crowd them out).
func (r *Repository) sessionFor(eph []byte, kept bool) (cipher.AEAD, error) {
	if v, ok := r.sessions.Load(string(eph)); ok {
		o := v.(*openedSession)
		if kept {
			// opened for a data pack of the same session first
			r.keepSessionKey(eph, o.key)
		}
		return o.aead, nil
	}
	if r.dataKey == nil {
		return openSession(r.keys.DataPrivate, eph) // its error
	}
	var key []byte
	var err error
	if kept {
		key, err = r.sessionKey(eph)
	} else {
		key, err = sessionKeyWith(r.dataKey, eph)
	}
	if err != nil {
		return nil, err
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	r.sessions.Store(string(eph), &openedSession{a, key})
	return a, nil
}

// openedSession is a session's AEAD, and its key (for keepSessionKey).
type openedSession struct {
	aead cipher.AEAD
	key  []byte
}

// BlobError names the pack and blob a read failed on.
type BlobError struct {
	Pack ID
	Blob ID
	Err  error
}

func (e *BlobError) Error() string {
	return fmt.Sprintf("blob %s in pack %s: %v", e.Blob.Short(), e.Pack.String(), e.Err)
}
func (e *BlobError) Unwrap() error { return e.Err }

// ErrBlobNotFound: the index does not know the blob.
var ErrBlobNotFound = errors.New("blob not in index")

// LoadBlob reads, decrypts, decompresses and verifies one blob.
func (r *Repository) LoadBlob(ctx context.Context, t BlobType, id ID) ([]byte, error) {
	data, loc, err := r.loadBlobOnce(ctx, t, id)
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrBlobNotFound) {
		return data, err
	}
	if errors.Is(err, storage.ErrNotFound) && r.packGone(ctx, loc.Pack, err) {
		data, _, err = r.loadBlobOnce(ctx, t, id)
		return data, err
	}
	// The index still names a missing pack, or what it names there does
	// not decode: another copy, if the index knows one, is read instead
	// (two collections' index rewrites can leave the entry of a pack one
	// of them deleted, which the next collection drops; a damaged pack,
	// or an entry an enrolled host indexed a second time in a pack of its
	// choosing, leaves the good copy elsewhere).
	return r.otherCopy(ctx, loc, err)
}

// readAt reads and verifies the blob at loc.
func (r *Repository) readAt(ctx context.Context, loc BlobLocation) ([]byte, error) {
	read := func() ([]byte, error) {
		rc, err := r.be.Get(ctx, packName(loc.Pack), int64(loc.Offset), int64(loc.Length))
		if err != nil {
			return nil, &BlobError{loc.Pack, loc.ID, err}
		}
		sealed := make([]byte, loc.Length)
		_, err = io.ReadFull(rc, sealed)
		rc.Close()
		if err != nil {
			return nil, &BlobError{loc.Pack, loc.ID, err}
		}
		return sealed, nil
	}
	if loc.Bundled() {
		return r.readMember(loc, read)
	}
	sealed, err := read()
	if err != nil {
		return nil, err
	}
	return r.decodeBlob(loc, sealed)
}

func (r *Repository) loadBlobOnce(ctx context.Context, t BlobType, id ID) ([]byte, BlobLocation, error) {
	loc, ok := r.idx.lookup(id)
	if !ok && r.reloadDamaged(ctx) {
		loc, ok = r.idx.lookup(id)
	}
	if !ok {
		return nil, loc, fmt.Errorf("%s blob %s: %w", t, id.Short(), ErrBlobNotFound)
	}
	if loc.Type != t {
		return nil, loc, fmt.Errorf("blob %s: is %s, want %s", id.Short(), loc.Type, t)
	}
	data, err := r.readAt(ctx, loc)
	return data, loc, err
}

// reloadDamaged reads the index again when a bucket of the cached
// snapshot it was opened from did not decode (its lookups miss), and
// reports whether it did or another reader had.
func (r *Repository) reloadDamaged(ctx context.Context) bool {
	if r.idx.damage() == nil {
		return false
	}
	select { // one reload at a time
	case r.reloadSem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-r.reloadSem }()
	return r.idx.damage() == nil || r.LoadIndex(ctx) == nil
}

// packGone reports whether a read of pack failed because the pack is gone
// from storage and the index, read again, no longer names it: repack
// moved its blobs elsewhere and a later collection deleted it (a reader
// that loaded the index before then still looked there). The caller may
// then look its blobs up again.
func (r *Repository) packGone(ctx context.Context, pack ID, err error) bool {
	if !errors.Is(err, storage.ErrNotFound) || ctx.Err() != nil {
		return false
	}
	select { // one reload at a time; a cancelled reader does not wait its turn
	case r.reloadSem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-r.reloadSem }()
	r.idx.mu.RLock()
	_, still := r.idx.packByID[pack]
	gen := r.idx.gen
	r.idx.mu.RUnlock()
	if !still {
		return true // another reader has reloaded already
	}
	// an index that still names the gone pack after a reload is not read
	// again for each of its blobs
	if r.goneAt[pack] == gen && gen != 0 {
		return false
	}
	if r.LoadIndex(ctx) != nil {
		return false
	}
	r.idx.mu.RLock()
	_, still = r.idx.packByID[pack]
	gen = r.idx.gen
	r.idx.mu.RUnlock()
	if still {
		if r.goneAt == nil {
			r.goneAt = map[ID]uint64{}
		}
		r.goneAt[pack] = gen
	}
	return !still
}

func (r *Repository) decodeBlob(loc BlobLocation, sealed []byte) ([]byte, error) {
	return r.decodeBlobInto(loc, sealed, nil)
}

// decodeBlobInto is decodeBlob decompressing into *buf when it is large
// enough (and growing it when not), so a caller that is done with each
// blob before the next does not allocate one buffer per blob. The result
// may alias *buf or sealed. buf nil: a new buffer.
func (r *Repository) decodeBlobInto(loc BlobLocation, sealed []byte, buf *[]byte) ([]byte, error) {
	if loc.Bundled() {
		b, err := r.openBundle(loc, sealed, buf)
		if err != nil {
			return nil, err
		}
		return r.member(loc, b)
	}
	aead, err := r.sessionFor(loc.EphPublic, loc.Type == TreeBlob)
	if err != nil {
		return nil, &BlobError{loc.Pack, loc.ID, err}
	}
	plain, err := openInPlace(aead, sealed, blobAD(loc.Type, loc.ID))
	if err != nil {
		return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("%w: does not authenticate", ErrCorrupt)}
	}
	var dst []byte
	if buf != nil {
		if need := int(loc.RawLength); cap(*buf) < need && need <= maxBlobPlaintext {
			*buf = make([]byte, need)
		}
		dst = *buf
	}
	data, err := decompressInto(dst, plain, int(loc.RawLength))
	if err != nil {
		return nil, &BlobError{loc.Pack, loc.ID, err}
	}
	if r.ids.Sum(data) != loc.ID {
		return nil, &BlobError{loc.Pack, loc.ID, fmt.Errorf("%w: content does not match its id", ErrCorrupt)}
	}
	return data, nil
}

// Lookup returns where a blob is stored.
func (r *Repository) Lookup(id ID) (BlobLocation, bool) { return r.idx.lookup(id) }

// Locate is Lookup for a reader that acts on a miss (a restore reports
// the blob missing): a miss because a bucket of the cached index snapshot
// did not decode reads the index files and looks again.
func (r *Repository) Locate(ctx context.Context, id ID) (BlobLocation, bool) {
	loc, ok := r.idx.lookup(id)
	if !ok && r.reloadDamaged(ctx) {
		loc, ok = r.idx.lookup(id)
	}
	return loc, ok
}

// ReadPackBlobs reads the given blobs of one pack with a single ranged read
// and calls fn with each blob's verified plaintext, in offset order (a
// bundle's members in the order given: each bundle is decoded once for
// the members that follow one another). A blob
// that fails to decode is passed to fn with its error, and the rest still
// follow. locs must all name the same pack; a blob may appear more than once.
// The plaintext is valid only until fn returns: its buffer is reused for
// the next blob (fn copies what it keeps).
func (r *Repository) ReadPackBlobs(ctx context.Context, locs []BlobLocation, fn func(BlobLocation, []byte, error) error) error {
	if len(locs) == 0 {
		return nil
	}
	pack := locs[0].Pack
	rc, start, err := r.openSpan(ctx, locs)
	if err != nil {
		if r.packGone(ctx, pack, err) {
			// moved by a repack: each blob from where the index now puts
			// it, handed to fn under the location the caller asked for
			for _, l := range locs {
				data, derr := r.LoadBlob(ctx, l.Type, l.ID)
				if err := fn(l, data, derr); err != nil {
					return err
				}
			}
			return nil
		}
		if ctx.Err() != nil {
			return &BlobError{pack, locs[0].ID, err}
		}
		// the span cannot be read (an entry past the pack's end): each
		// blob alone, else from another copy
		for _, l := range locs {
			data, derr := r.readAt(ctx, l)
			if derr != nil && ctx.Err() == nil {
				data, derr = r.otherCopy(ctx, l, derr)
			}
			if err := fn(l, data, derr); err != nil {
				return err
			}
		}
		return nil
	}
	defer rc.Close()
	d := blobDecoder{r: r}
	return readSealed(rc, start, locs, true, func(l BlobLocation, sealed []byte) error {
		data, err := d.decode(l, sealed)
		if err != nil && ctx.Err() == nil {
			data, err = r.otherCopy(ctx, l, err)
		}
		return fn(l, data, err)
	})
}

// otherCopy reads blob l from another pack the index knows it in, when
// the copy at l did not decode (err); err if none does.
func (r *Repository) otherCopy(ctx context.Context, l BlobLocation, err error) ([]byte, error) {
	cands := r.idx.others(l.ID)
	if loc, ok := r.idx.lookup(l.ID); ok {
		cands = append(cands, loc)
	}
	for _, o := range cands {
		if o.Pack == l.Pack && o.Offset == l.Offset || o.Type != l.Type {
			continue
		}
		if d, oerr := r.readAt(ctx, o); oerr == nil {
			return d, nil
		}
	}
	return nil, err
}

// openSpan sorts locs (blobs of one pack) by offset and opens one ranged
// read from the first to the end of the last; start is where it begins.
func (r *Repository) openSpan(ctx context.Context, locs []BlobLocation) (rc io.ReadCloser, start int64, err error) {
	sort.SliceStable(locs, func(i, j int) bool { return locs[i].Offset < locs[j].Offset })
	start = int64(locs[0].Offset)
	last := locs[len(locs)-1]
	rc, err = r.be.Get(ctx, packName(locs[0].Pack), start, int64(last.Offset)+int64(last.Length)-start)
	return rc, start, err
}

// readSealed walks locs (sorted by offset, all in one pack) in rc, which
// starts at offset pos of the pack, and calls each with every blob's
// sealed bytes, or with nil for a blob listed again right after itself.
// With reuse, the bytes are valid only until each returns (one buffer
// serves every blob); otherwise each blob has its own.
func readSealed(rc io.Reader, pos int64, locs []BlobLocation, reuse bool, each func(BlobLocation, []byte) error) error {
	pack := locs[0].Pack
	var buf []byte
	for i, l := range locs {
		if l.Pack != pack {
			return fmt.Errorf("ReadPackBlobs: blobs from several packs")
		}
		if i > 0 && l.Offset == locs[i-1].Offset {
			if err := each(l, nil); err != nil { // the same blob again
				return err
			}
			continue
		}
		if int64(l.Offset) < pos {
			return fmt.Errorf("%w: pack %s: overlapping blobs", ErrCorrupt, pack.Short())
		}
		if gap := int64(l.Offset) - pos; gap > 0 {
			if _, err := io.CopyN(io.Discard, rc, gap); err != nil {
				return &BlobError{pack, l.ID, err}
			}
		}
		if !reuse || cap(buf) < int(l.Length) {
			buf = make([]byte, l.Length)
		}
		sealed := buf[:l.Length]
		if _, err := io.ReadFull(rc, sealed); err != nil {
			return &BlobError{pack, l.ID, err}
		}
		pos = int64(l.Offset) + int64(l.Length)
		if err := each(l, sealed); err != nil {
			return err
		}
	}
	return nil
}

// SaveManifest stores a manifest; it refuses to replace an existing one,
// loose or folded into a set, and to bring back a deleted one.
func (r *Repository) SaveManifest(ctx context.Context, m *Manifest) error {
	if err := ValidBackupID(m.ID); err != nil {
		return err
	}
	m.Version = manifestVersion
	if m.KeyID == "" {
		m.KeyID = r.key.ID
	}
	// Never over another backup's manifest: a storage that cannot say
	// whether the name is free is not taken to mean it is.
	for _, name := range []string{manifestsPrefix + m.ID, tombstonesPrefix + m.ID} {
		if _, err := r.be.Stat(ctx, name); err == nil {
			if name == manifestsPrefix+m.ID {
				return fmt.Errorf("%w: %s", ErrBackupExists, m.ID)
			}
			return fmt.Errorf("%w: backup %s was deleted from %s, and a deleted backup's id is not used again there; start a new backup (it gets a new id)",
				ErrBackupIDTaken, m.ID, r.be.Location())
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("backup %s not written: cannot tell whether the id is free: %w", m.ID, err)
		}
	}
	// folded into a set by a collection (a retried commit whose first
	// attempt was stored): only a reader can look
	if r.keys.CanRead() {
		// a new backup's id (its start time first) opens no set; its
		// tombstone was looked up above
		v, err := r.listSetsView(ctx, m.ID, false)
		if err != nil {
			return fmt.Errorf("backup %s not written: cannot tell whether the id is free: %w", m.ID, err)
		}
		for _, s := range v.sets {
			if s.err != nil {
				return fmt.Errorf("backup %s not written: cannot tell whether the id is free: %w", m.ID, s.err)
			}
		}
		if s, _ := v.inSets(m.ID); s != nil {
			return fmt.Errorf("%w: %s", ErrBackupExists, m.ID)
		}
	}
	raw, js, err := encodeManifestJSON(r.keys, m)
	if err != nil {
		return err
	}
	if err := r.be.Put(ctx, manifestsPrefix+m.ID, bytes.NewReader(raw), int64(len(raw))); err != nil {
		return err
	}
	if dm, err := parseManifestJSON(m.ID, js); err == nil {
		r.putVerifiedManifest(m.ID, int64(len(raw)), js, dm) // as a reader would decode it
	}
	if r.looseSeen.Load() > 0 {
		r.looseSeen.Add(1)
	}
	return nil
}

// ErrBackupNotFound: no manifest with that id.
var ErrBackupNotFound = errors.New("backup not found")

// LoadManifest reads and verifies one manifest, loose or in a set.
func (r *Repository) LoadManifest(ctx context.Context, id string) (*Manifest, error) {
	if err := ValidBackupID(id); err != nil {
		return nil, err
	}
	raw, err := storage.ReadAll(ctx, r.be, manifestsPrefix+id)
	if err == nil {
		// deleted, its manifest's removal having failed?
		if r.keys.CanRead() {
			if _, err := r.be.Stat(ctx, tombstonesPrefix+id); err == nil {
				return nil, fmt.Errorf("%s: %w (deleted)", id, ErrBackupNotFound)
			} else if !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
		}
		return decodeManifest(r.keys, id, raw)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if !r.keys.CanRead() {
		return nil, fmt.Errorf("%s: %w", id, ErrBackupNotFound)
	}
	// folded into a set: the set was stored before the loose manifest
	// was deleted
	for attempt := 0; ; attempt++ {
		v, err := r.listSetsView(ctx, id, true)
		if err != nil {
			return nil, err
		}
		if _, dead := v.tombs[id]; dead {
			return nil, fmt.Errorf("%s: %w (deleted)", id, ErrBackupNotFound)
		}
		if s, e := v.inSets(id); s != nil {
			m, err := e.manifest(ctx, s.oi.Name)
			if errors.Is(err, errSetGone) && attempt < 4 {
				continue // rewritten meanwhile: list again
			}
			return m, err
		}
		for _, s := range v.sets {
			if s.err != nil {
				return nil, fmt.Errorf("%s: not found, and a manifest set could not be read: %w", id, s.err)
			}
		}
		return nil, fmt.Errorf("%s: %w", id, ErrBackupNotFound)
	}
}

// ManifestIDs lists the ids of all backups, oldest first. A set that
// cannot be read is an error (its backups would be missing).
func (r *Repository) ManifestIDs(ctx context.Context) ([]string, error) {
	v, err := r.listManifestView(ctx, true)
	if err != nil {
		return nil, err
	}
	refs, errs := v.refs()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	ids := make([]string, len(refs))
	for i, ref := range refs {
		ids[i] = ref.id
	}
	return ids, nil
}

// manifestInfos lists the manifests, sorted by id (oldest first), and
// drops the cached copies of manifests no longer listed.
func (r *Repository) manifestInfos(ctx context.Context) ([]storage.ObjectInfo, error) {
	var infos []storage.ObjectInfo
	err := r.be.List(ctx, manifestsPrefix, func(oi storage.ObjectInfo) error {
		if oi.Name != formatCanary {
			infos = append(infos, oi)
		}
		return nil
	})
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	if err == nil {
		r.looseSeen.Store(int64(len(infos)) + 1)
	}
	if err == nil && r.cache != nil {
		listed := make(map[string]bool, len(infos))
		for _, oi := range infos {
			listed[strings.TrimPrefix(oi.Name, manifestsPrefix)] = true
		}
		r.cache.keep(cacheManifests, func(n string) bool { return listed[n] })
	}
	return infos, err
}

// loadListedManifest is LoadManifest for a manifest a listing showed: a
// cached copy of the listed size is used (and authenticated as always).
func (r *Repository) loadListedManifest(ctx context.Context, oi storage.ObjectInfo) (*Manifest, error) {
	m, _, err := r.loadListedManifestJSON(ctx, oi)
	return m, err
}

// loadListedManifestJSON is loadListedManifest, with the manifest's JSON.
func (r *Repository) loadListedManifestJSON(ctx context.Context, oi storage.ObjectInfo) (*Manifest, []byte, error) {
	id := strings.TrimPrefix(oi.Name, manifestsPrefix)
	if err := ValidBackupID(id); err != nil {
		return nil, nil, err
	}
	if m, js, ok := r.cachedManifest(id, oi.Size); ok {
		return m, js, nil
	}
	raw, err := storage.ReadAll(ctx, r.be, oi.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%s: %w", id, ErrBackupNotFound)
	} else if err != nil {
		return nil, nil, err
	}
	m, js, err := decodeManifestJSON(r.keys, id, raw)
	if err == nil {
		r.putVerifiedManifest(id, int64(len(raw)), js, m)
	}
	return m, js, err
}

// Manifests loads every manifest, oldest first. Unreadable ones are returned
// in errs (one bad manifest must not hide the others).
func (r *Repository) Manifests(ctx context.Context) (ms []*Manifest, errs []error, err error) {
	ms, errs, _, err = r.manifests(ctx)
	return ms, errs, err
}

// manifests is Manifests with the view it read.
func (r *Repository) manifests(ctx context.Context) ([]*Manifest, []error, *manifestView, error) {
	for attempt := 0; ; attempt++ {
		v, err := r.listManifestView(ctx, true)
		if err != nil {
			return nil, nil, nil, err
		}
		refs, errs := v.refs()
		out := make([]*Manifest, len(refs))
		oerr := make([]error, len(refs))
		err = parallel(ctx, len(refs), 8, func(i int) error {
			out[i], oerr[i] = r.loadRef(ctx, refs[i])
			return nil
		})
		if err != nil {
			return nil, nil, nil, err
		}
		// A loose manifest gone since the listing was folded into a set
		// (or deleted) meanwhile, or a set rewritten before a group of
		// its cached form was read: list again.
		again := false
		var ms []*Manifest
		for i := range refs {
			if oerr[i] != nil {
				again = again || (refs[i].loose != nil && errors.Is(oerr[i], ErrBackupNotFound)) ||
					(refs[i].set != nil && errors.Is(oerr[i], errSetGone))
				errs = append(errs, oerr[i])
			} else {
				ms = append(ms, out[i])
			}
		}
		if again && attempt < 4 {
			continue
		}
		sort.SliceStable(ms, func(i, j int) bool { return ms[i].Started.Before(ms[j].Started) })
		return ms, errs, v, nil
	}
}

// NewestManifest is the newest manifest match accepts, or nil. A backup's
// id begins with its start time (backup-YYYYMMDD-HHMMSS-…), so the ids are
// walked newest first and manifests loaded a batch at a time until one
// matches; sets, named by their newest backup, are opened only when the
// walk reaches them: choosing a parent costs three listings and a few
// reads, not a read of every manifest (on S3, a request each). Unreadable
// manifests are skipped, as Manifests reports them apart.
func (r *Repository) NewestManifest(ctx context.Context, match func(*Manifest) bool) (*Manifest, error) {
	ms, _, err := r.NewestManifests(ctx, 1, match)
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return ms[0], nil
}

// NewestManifests is the n newest manifests match accepts (nil: any),
// newest first, walked as NewestManifest walks them: what it costs grows
// with n, not with the history. Manifests and sets met on the way that
// cannot be read are skipped and returned in errs.
//
// In a repository of format 4 only the newest sets are listed (their names
// sort newest first): every set is listed only when the walk gets past
// them.
func (r *Repository) NewestManifests(ctx context.Context, n int, match func(*Manifest) bool) (ms []*Manifest, errs []error, err error) {
	return r.newestManifests(ctx, n, match, setsFirst)
}

// newestManifests lists the first sets (0: every set) and walks.
func (r *Repository) newestManifests(ctx context.Context, n int, match func(*Manifest) bool, first int) (ms []*Manifest, errs []error, err error) {
	if match == nil {
		match = func(*Manifest) bool { return true }
	}
	if n <= 0 {
		return nil, nil, nil
	}
	v, err := r.listManifestViewOnce(ctx, true, true, first)
	if err != nil {
		return nil, nil, err
	}
	// candidates, newest first: the loose ones, and the entries of every
	// set opened so far
	var cand []backupRef
	for id, oi := range v.loose {
		oi := oi
		cand = append(cand, backupRef{id: id, loose: &oi})
	}
	sortDesc := func(c []backupRef) {
		sort.Slice(c, func(i, j int) bool { return c[i].id > c[j].id })
	}
	sortDesc(cand)
	taken, failed := map[string]bool{}, map[string]error{}
	done := func() []error {
		for _, id := range slices.Sorted(maps.Keys(failed)) {
			errs = append(errs, failed[id])
		}
		return errs
	}
	var found []*Manifest
	opened := 0
	batch := min(max(8, n), 64)
	for {
		// Open every set that may hold something newer than the next
		// candidates; once n are found, those that may hold a backup of
		// the last found one's second (sameSecond), if it has one.
		last := ""
		if len(found) >= n {
			if last = secondOf(found[n-1].ID); last == "" {
				return newestByStart(found, n), done(), nil
			}
		}
		wanted := func(s *manifestSet) bool {
			if last != "" {
				return s.newest >= last
			}
			return len(cand) < batch || s.newest >= cand[batch-1].id
		}
		for opened < len(v.sets) && wanted(v.sets[opened]) {
			s := v.sets[opened]
			opened++
			if err := r.openSet(ctx, s); errors.Is(err, storage.ErrNotFound) {
				return r.newestManifestsAll(ctx, n, match) // rewritten meanwhile: read a fresh view whole
			} else if err != nil {
				errs = append(errs, err) // skipped, as an unreadable manifest is
				continue
			}
			// merged, not sorted again (the entries are in order: opening
			// a set checks it): sorting a set's thousand entries with the
			// rest at each set opened was 3% and 7% of the CPU of `repo
			// list` after 10,000 backups in two profiles (bench case D)
			add := make([]backupRef, len(s.entries))
			for i := range s.entries {
				add[len(add)-1-i] = backupRef{id: s.entries[i].id, set: s, entry: &s.entries[i]}
			}
			cand = mergeDesc(cand, add)
		}
		if opened == len(v.sets) && v.setsMore && (len(v.sets) == 0 || wanted(v.sets[len(v.sets)-1])) {
			// the sets not listed (none newer than the last listed) may
			// hold what comes next: walked again over every set
			return r.newestManifests(ctx, n, match, 0)
		}
		if len(cand) == 0 {
			return newestByStart(found, n), done(), nil
		}
		// as many as may still be needed: once n are found, only those
		// started in the second of the last found (a batch of 51 loaded
		// to take one or two, in bench case D where backups are seconds
		// apart)
		k := min(batch, len(cand), max(8, n-len(found)))
		if len(found) >= n {
			k = 0
			for k < min(batch, len(cand)) && sameSecond(cand[k].id, found[n-1].ID) {
				k++
			}
			if k == 0 {
				return newestByStart(found, n), done(), nil
			}
		}
		got := make([]*Manifest, k)
		gerr := make([]error, k)
		var gone atomic.Bool
		err := parallel(ctx, k, 8, func(i int) error {
			if _, dead := v.tombs[cand[i].id]; !dead && !taken[cand[i].id] {
				got[i], gerr[i] = r.loadRef(ctx, cand[i])
				if cand[i].loose != nil && errors.Is(gerr[i], ErrBackupNotFound) || cand[i].set != nil && errors.Is(gerr[i], errSetGone) {
					gone.Store(true)
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if gone.Load() {
			// folded into a set (or deleted) since the listing, or a set
			// rewritten
			return r.newestManifestsAll(ctx, n, match)
		}
		for i := 0; i < k; i++ {
			if len(found) >= n && !sameSecond(cand[i].id, found[n-1].ID) {
				return newestByStart(found, n), done(), nil
			}
			// one backup may be a candidate twice (loose and folded, or
			// in two sets, while a collection works): taken once, and an
			// unreadable copy is an error only if no copy can be read
			id := cand[i].id
			switch {
			case taken[id]:
			case gerr[i] != nil:
				failed[id] = gerr[i]
			case got[i] != nil:
				taken[id] = true
				delete(failed, id)
				if match(got[i]) {
					found = append(found, got[i])
				}
			}
		}
		cand = cand[k:]
	}
}

// mergeDesc merges two lists of candidates sorted newest first.
func mergeDesc(a, b []backupRef) []backupRef {
	out := make([]backupRef, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].id >= b[0].id {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// sameSecond reports whether two ids of NewBackupID's form name the same
// second: their order is then not their start's, so the walk goes on
// through that second and newestByStart orders them.
func sameSecond(a, b string) bool {
	const n = len("backup-20060102-150405")
	return len(a) > n && len(b) > n && a[:n] == b[:n] && strings.HasPrefix(a, "backup-")
}

// secondOf is the part of an id of NewBackupID's form that names its
// second ("" for another id): the ids of that second sort from it.
func secondOf(id string) string {
	const n = len("backup-20060102-150405")
	if len(id) > n && strings.HasPrefix(id, "backup-") {
		return id[:n]
	}
	return ""
}

// newestByStart is the n of ms started last, newest first (ties by id).
func newestByStart(ms []*Manifest, n int) []*Manifest {
	sort.SliceStable(ms, func(i, j int) bool {
		if !ms[i].Started.Equal(ms[j].Started) {
			return ms[i].Started.After(ms[j].Started)
		}
		return ms[i].ID > ms[j].ID
	})
	return ms[:min(n, len(ms))]
}

// newestManifestsAll is NewestManifests over a view read whole.
func (r *Repository) newestManifestsAll(ctx context.Context, n int, match func(*Manifest) bool) ([]*Manifest, []error, error) {
	ms, errs, err := r.Manifests(ctx)
	if err != nil {
		return nil, nil, err
	}
	var found []*Manifest
	for _, m := range ms {
		if match(m) {
			found = append(found, m)
		}
	}
	return newestByStart(found, n), errs, nil
}

// DeleteManifest removes a backup; its data goes at the next gc. With a
// full-access key a tombstone is written first (the backup may be folded
// into a set, or be folded by a collection running now), then the loose
// manifest is removed. A write-only key can only remove a loose manifest.
func (r *Repository) DeleteManifest(ctx context.Context, id string) error {
	if err := ValidBackupID(id); err != nil {
		return err
	}
	if r.keys.CanRead() {
		v, err := r.listManifestView(ctx, true)
		if err != nil {
			return err
		}
		_, loose := v.loose[id]
		_, dead := v.tombs[id]
		if s, _ := v.inSets(id); (s == nil && !loose) || dead {
			return fmt.Errorf("%s: %w", id, ErrBackupNotFound)
		}
		if err := r.saveTombstone(ctx, id); err != nil {
			return err
		}
		r.cache.remove(cacheManifests, id)
		err = r.be.Delete(ctx, manifestsPrefix+id)
		if errors.Is(err, storage.ErrLocked) {
			return nil // locked: a collection removes it once its lock has ended
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("backup %s is deleted (its tombstone is stored); removing its manifest failed, the next gc removes it: %w", id, err)
		}
		return nil
	}
	if r.cfg.Version >= 2 {
		// it could not write a tombstone, and a collection folding the
		// manifest meanwhile would bring the backup back (review)
		return fmt.Errorf("backup %s not deleted: %w; deleting a backup needs a full-access key", id, ErrWriteOnly)
	}
	r.cache.remove(cacheManifests, id)
	err := r.be.Delete(ctx, manifestsPrefix+id)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s: %w", id, ErrBackupNotFound)
	}
	return err
}

// LoadTree loads and validates a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id ID) (*Tree, error) {
	b, err := r.loadTreeBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	return DecodeTree(b)
}

// ReuseTree records that the caller reuses the stored tree blob id (a
// directory the parent backup holds unchanged) instead of saving it, as
// SaveTree would record a tree it found stored. It reports false,
// recording nothing, when the blob is not stored or its pack is
// condemned: the caller must then save the tree.
func (r *Repository) ReuseTree(id ID) bool { return r.useStored(TreeBlob, id) }

// SaveTree stores a tree blob.
func (r *Repository) SaveTree(ctx context.Context, t *Tree) (ID, error) {
	b, err := EncodeTree(t)
	if err != nil {
		return ID{}, err
	}
	id, _, err := r.SaveBlob(ctx, TreeBlob, b)
	return id, err
}

// parallel runs fn(0..n-1) on up to workers goroutines; the first error
// cancels the rest.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	if workers > n {
		workers = n
	}
	if workers <= 0 {
		return nil
	}
	if workers > runtime.GOMAXPROCS(0)*8 {
		workers = runtime.GOMAXPROCS(0) * 8
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
