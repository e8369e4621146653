package repository

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"backupd/storage"
)

// A writer marker (writers/<id>) announces a job that may come to depend on
// packs: a backup component, a copy, a manifest commit. It is written before
// the writer loads the index, renewed while the writer runs, and when the
// writer ends it is marked ended (not removed: a collection that was
// running meanwhile must still learn of it). Garbage collection reads the
// markers at deletion time (never a snapshot taken earlier by somebody
// else), and with any writer open, or ended since the collection began:
//
//   - it deletes no pack younger than the oldest such writer (that writer
//     may have written it) nor any written since the collection began;
//   - it deletes no pack at once, without a safety window (the writer may
//     have loaded an index that still lists the pack, deduplicated against
//     it, and committed a manifest the collection did not see); such packs
//     are condemned instead;
//   - it deletes no condemned pack condemned after the writer started (the
//     writer loaded its index before the condemnation).
//
// A writer that dies leaves its marker; once not renewed for writerLease it
// no longer holds anything back (the job's retry registers anew), and a
// writer whose own renewals failed that long may not commit (Valid), even
// once they succeed again. A collection that finds no other running
// removes the markers that ended before it began (none running can need
// them), and markers lapsed a day ago.
//
// Collections register the same way under collectors/: one that finds
// another running deletes nothing (each keeps one copy of a duplicated
// blob, chosen by its own index, so two at once could each delete the
// copy the other kept).
const (
	writersPrefix    = "writers/"
	collectorsPrefix = "collectors/"
)

var (
	writerRenew = time.Minute
	writerLease = 10 * time.Minute
	// clockSkew is allowed between this host's clock and the storage's
	// (marker times are the writer's, pack times the storage's).
	clockSkew = 2 * time.Minute
)

type writerMarker struct {
	Started time.Time `json:"started"`
	Renewed time.Time `json:"renewed"`
	Ended   time.Time `json:"ended,omitzero"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Purpose string    `json:"purpose"`
	// Proc, Seq and EndSeq order the registrations of one process: see
	// procID.
	Proc   string `json:"proc,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	EndSeq uint64 `json:"end_seq,omitempty"`
}

// procID names this process in the markers it writes, and markerSeq
// numbers its registrations and their ends. A marker's storage time has
// whole seconds, so a registration that ended in the second another
// began counts for it as still running (it may have overlapped). A marker
// of this process whose end was numbered before the other's registration
// ended before it, whatever the seconds say: all it did came first (End
// is called once a registration's work is done: deferred to the return
// of a collection, a compaction, a repair or a copy, after the pending
// marker or the manifest for a backup; only a failed collection's
// extension of every lock follows it, which deletes nothing). A
// compaction after each backup, backups less than a second apart, stood
// back from the one before it (bench case D: 54 index files where the
// bound is 16).
var (
	procID    = fmt.Sprintf("%x", randomBytes(8))
	markerSeq atomic.Uint64
)

// markerOrder is a registration's place in its process's numbering.
type markerOrder struct {
	proc string
	seq  uint64
}

// endedBefore reports whether m is of the same process as o and ended
// before o registered.
func (o markerOrder) endedBefore(m writerMarker) bool {
	return o.proc != "" && m.Proc == o.proc && m.EndSeq != 0 && m.EndSeq < o.seq
}

func (w *Writer) order() markerOrder { return markerOrder{w.marker.Proc, w.marker.Seq} }

// Writer is an open writer registration; End marks it ended (collections
// that started before the end still count it), remove deletes it.
type Writer struct {
	r      *Repository
	name   string
	marker writerMarker
	stop   chan struct{}
	done   sync.WaitGroup
	once   sync.Once
	mu     sync.Mutex
	held   time.Time // when the marker was last stored
	// lapsed: once renewals were apart longer than collections honour a
	// registration, a collection may have run without counting this one
	// (and removed markers it would have needed); it stays lapsed even
	// when renewals succeed again (review)
	lapsed bool
}

// BeginWrite registers a writer. Call it before loading the index of a
// session that will write or commit, and End when the session's data is
// referenced by a manifest (or pending marker) or abandoned.
func (r *Repository) BeginWrite(ctx context.Context, purpose string) (*Writer, error) {
	return r.register(ctx, writersPrefix, purpose)
}

func (r *Repository) register(ctx context.Context, prefix, purpose string) (*Writer, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	w := &Writer{r: r, name: fmt.Sprintf("%s%d-%x", prefix, now.UnixNano(), randomBytes(6)),
		marker: writerMarker{Started: now, Renewed: now, Host: host, PID: os.Getpid(), Purpose: purpose, Proc: procID, Seq: markerSeq.Add(1)},
		stop:   make(chan struct{})}
	if err := w.put(ctx); err != nil {
		return nil, fmt.Errorf("registering writer: %w", err)
	}
	w.done.Add(1)
	go w.renew()
	r.regs.add(w)
	return w, nil
}

// registrations are a handle's open registrations (writers and
// collectors).
type registrations struct {
	mu sync.Mutex
	m  map[*Writer]struct{}
}

func (rs *registrations) add(w *Writer) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[*Writer]struct{}{}
	}
	rs.m[w] = struct{}{}
}

func (rs *registrations) drop(w *Writer) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.m, w)
}

// registrationsValid reports ErrWriterLapsed when one of the handle's open
// registrations lapsed. A writer checks it before it writes an index file:
// a collection that no longer counted it may have deleted the packs it
// stored, and their index files; indexed again, every later backup would
// deduplicate against the deleted packs and fail its commit, until the
// next collection dropped the entries again (review).
func (r *Repository) registrationsValid() error {
	r.regs.mu.Lock()
	defer r.regs.mu.Unlock()
	for w := range r.regs.m {
		if err := w.Valid(); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) put(ctx context.Context) error {
	w.mu.Lock()
	b, _ := json.Marshal(w.marker)
	w.mu.Unlock()
	at := time.Now()
	err := w.r.be.Put(ctx, w.name, bytes.NewReader(b), int64(len(b)))
	if err == nil {
		w.mu.Lock()
		if !w.held.IsZero() && lapseGap(w.held, at) > writerLease-clockSkew {
			w.lapsed = true
		}
		w.held = at
		w.mu.Unlock()
	}
	return err
}

// ErrWriterLapsed: the writer's registration could not be renewed for so
// long that garbage collection may no longer count it; it must not commit.
var ErrWriterLapsed = errors.New("the job's registration with the repository lapsed (storage unreachable for too long); it must run again")

// Valid reports ErrWriterLapsed when the registration was last stored
// longer ago than collections still honour it.
func (w *Writer) Valid() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lapsed || lapseGap(w.held, time.Now()) > writerLease-clockSkew {
		return ErrWriterLapsed
	}
	return nil
}

// lapseGap is the time from a to b on the monotonic clock or the wall
// clock, whichever is longer (a suspended virtual machine's monotonic clock
// may not count the pause).
func lapseGap(a, b time.Time) time.Duration {
	return max(b.Sub(a), b.Round(0).Sub(a.Round(0)))
}

func (w *Writer) renew() {
	defer w.done.Done()
	t := time.NewTicker(writerRenew)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			w.marker.Renewed = time.Now().UTC()
			w.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), writerRenew)
			_ = w.put(ctx) // a missed renewal is caught by the next; the lease is 10 of them
			cancel()
		}
	}
}

// End marks the registration ended (idempotent): collections running
// since before the end still count it; later ones do not, and remove it.
func (w *Writer) End() {
	if w == nil {
		return
	}
	w.finish(func(ctx context.Context) {
		w.mu.Lock()
		w.marker.Ended = time.Now().UTC()
		w.marker.EndSeq = markerSeq.Add(1)
		w.mu.Unlock()
		_ = w.put(ctx) // left behind unended, it lapses after writerLease
	})
}

// remove deletes the registration outright (a collector's own).
func (w *Writer) remove() {
	w.finish(func(ctx context.Context) { _ = w.r.be.Delete(ctx, w.name) })
}

// finish stops the renewals and then, once, does last.
func (w *Writer) finish(last func(ctx context.Context)) {
	w.once.Do(func() {
		w.r.regs.drop(w)
		close(w.stop)
		w.done.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		last(ctx)
	})
}

type openWriter struct {
	name    string
	started time.Time
}

// openWriters lists, under prefix, the registrations that count at now:
// open ones whose lease is current, and ones that ended at or after since
// (a time on the storage's clock, like the markers' own times), unless
// this process numbered their end before self registered (procID). Markers
// lapsed a day ago are returned for removal (stale), and so are markers
// that ended before since (done): a collection that finds no other running
// removes those, as none can need them any more (one that started before
// they ended would still be running; ended markers piled up by the ten
// thousand in case D's long history, and every collection read each one).
func (r *Repository) openWriters(ctx context.Context, prefix string, now, since time.Time, self markerOrder) (open []openWriter, stale, done []string, err error) {
	var names []storage.ObjectInfo
	if err := r.be.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi)
		return nil
	}); err != nil {
		return nil, nil, nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	for _, oi := range names {
		b, err := storage.ReadAll(ctx, r.be, oi.Name)
		if errors.Is(err, storage.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("reading marker %s: %w", oi.Name, err)
		}
		var m writerMarker
		if err := json.Unmarshal(b, &m); err != nil || m.Started.IsZero() {
			// an unreadable marker counts as a writer that started at the
			// marker's time: deleting on doubt is what must not happen
			m = writerMarker{Started: oi.ModTime, Renewed: oi.ModTime}
		}
		last := m.Renewed
		if oi.ModTime.After(last) {
			last = oi.ModTime
		}
		switch {
		// ended: the storage's time of the marker (written at the end)
		// against since, which is also the storage's time
		case !m.Ended.IsZero() && !oi.ModTime.Before(since) && !self.endedBefore(m):
			open = append(open, openWriter{name: oi.Name, started: m.Started})
		case m.Ended.IsZero() && now.Sub(last) < writerLease+clockSkew:
			open = append(open, openWriter{name: oi.Name, started: m.Started})
		case !m.Ended.IsZero():
			done = append(done, oi.Name)
		case now.Sub(last) > 24*time.Hour:
			stale = append(stale, oi.Name)
		}
	}
	sort.Slice(open, func(i, j int) bool { return open[i].started.Before(open[j].started) })
	return open, stale, done, nil
}

// dependencies tracks the packs a session's data depends on: packs it
// wrote, and packs holding blobs it deduplicated against or reused.
type dependencies struct {
	mu    sync.Mutex
	packs map[ID]struct{}
}

func (d *dependencies) add(id ID) {
	d.mu.Lock()
	if d.packs == nil {
		d.packs = map[ID]struct{}{}
	}
	d.packs[id] = struct{}{}
	d.mu.Unlock()
}

// DependedPacks lists the packs this session's writes depend on so far.
func (r *Repository) DependedPacks() []ID {
	r.deps.mu.Lock()
	defer r.deps.mu.Unlock()
	out := make([]ID, 0, len(r.deps.packs))
	for id := range r.deps.packs {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out
}

// Reuse records that the caller reuses stored blobs (an unchanged file's
// chunk list from the parent backup) without saving them. It reports false,
// recording nothing, when a blob is not stored or its pack is condemned:
// the caller must then store the data anew.
func (r *Repository) Reuse(ids []ID) bool {
	packs := make([]ID, 0, 1)
	var stored int64
	r.idx.mu.RLock()
	for _, id := range ids {
		l, ok := r.idx.blobs.get(id)
		if !ok || r.idx.condemned[l.pack] {
			r.idx.mu.RUnlock()
			return false
		}
		stored += l.entry(id).Stored()
		p := r.idx.packs[l.pack].id
		if len(packs) == 0 || packs[len(packs)-1] != p {
			packs = append(packs, p)
		}
	}
	r.idx.mu.RUnlock()
	for _, p := range packs {
		r.deps.add(p)
	}
	r.referenced(DataBlob, stored)
	return true
}

// ErrPacksMissing: a commit found packs its data needs gone from storage
// (deleted while the job ran); nothing was committed. The job's retry
// stores the data again.
var ErrPacksMissing = errors.New("packs this backup needs are missing from storage")

// lookupLimit is how many packs checkStored looks up one by one in a
// repository whose index holds stored packs (0: not loaded), before it
// lists data/ instead. A listing answers 1,000 objects a page, and a page
// takes about as long as 24 lookups made eight at a time (measured on
// versitygw on loopback: 245 objects listed in 4 to 7 ms, 64 lookups in
// about 10, 17 in about 3), and is priced on S3 as 12.5 lookups are. It
// was 64 whatever the size: 25 to 64 lookups where one page would do
// (bench case D: the 10,000th backup's check took 10 ms or 5 from one
// run to the next), and a listing of every pack of a large repository
// for 65.
func lookupLimit(stored int) int {
	if stored == 0 {
		return 64
	}
	return 24 * ((stored + 999) / 1000)
}

// CheckPacks verifies that every listed pack is stored and indexed, for a
// writer that is registered (BeginWrite): looked up in storage by a
// request each, or by listing data/ (checkStored). Every
// pack, not only those at risk from a collection: a pack the storage lost
// is then found by the next backup that depends on it, which fails,
// rather than by the next repo check, with every backup since depending
// on it. (Taking the index's word alone for packs no condemned list named
// was tried and dropped: a writer whose registration lapsed while a
// collection deleted its packs indexes them again when it wakes, and a
// retry then deduplicates against them; review. A backup's commit takes
// it only for packs this host looked up minutes ago: CheckBackupPacks.)
// A stored pack that no
// index file lists (a collection that failed after dropping it from the
// index, then could not put it back) is indexed again from its own
// header: a manifest committed over it would otherwise name data no index
// knows (review).
func (r *Repository) CheckPacks(ctx context.Context, packs []ID) error {
	if len(packs) == 0 {
		return nil
	}
	return r.checkPacks(ctx, nil, packs)
}

// CheckBackupPacks is CheckPacks for a backup's commit: of the packs its
// pending markers name (PendingPacks) and deps. Reading the markers,
// loading the index again and, when deps alone are more than lookups
// would cost, listing data/, are done at once (one after the other, the
// check took 8 of a backup's 31 ms before a cleanup in bench case D).
// A pack an earlier commit of this host looked up less than
// verifiedFresh ago, that the index lists and no condemned list names, is
// not asked for again (verifiedpacks.go: a lost pack is found that much
// later).
func (r *Repository) CheckBackupPacks(ctx context.Context, backupID string, deps []ID) error {
	return r.checkPacks(ctx, func() ([]ID, error) { return r.PendingPacks(ctx, backupID) }, deps)
}

func (r *Repository) checkPacks(ctx context.Context, pending func() ([]ID, error), deps []ID) error {
	boot, began, _ := bootClock()
	var fresh map[ID]bool
	if pending != nil {
		fresh = r.freshPacks(boot, began)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var loadErr, listErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		loadErr = r.LoadIndex(ctx)
	}()
	var listed map[ID]bool
	listing := unfresh(deps, fresh) > lookupLimit(r.storedPacks())
	if listing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			listed, listErr = r.listStoredPacks(ctx)
		}()
	}
	var more []ID
	var err error
	if pending != nil {
		if more, err = pending(); err != nil {
			cancel() // the listing and the load are of no use now
		}
	}
	packs := slices.Concat(more, deps)
	slices.SortFunc(packs, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	packs = slices.Compact(packs) // a backup's pending and in-memory lists overlap
	if err == nil && !listing {
		// looked up while the index loads
		err = r.checkStored(ctx, slices.DeleteFunc(slices.Clone(packs), func(id ID) bool { return fresh[id] }))
	}
	wg.Wait()
	if err = cmp.Or(err, listErr); err != nil {
		return err
	}
	if listing {
		err = notStored(packs, listed)
	}
	// a pack missing says more than the index's load failing (review)
	if err = cmp.Or(err, loadErr); err != nil {
		return err
	}
	// The index's word is part of why a fresh pack was not asked for:
	// one it does not list, or shows condemned, is asked for now. Only
	// packs it lists, not condemned, are kept as found (verifiedpacks.go).
	var unindexed, recheck, stored []ID
	asked := func(id ID) bool { return listing || !fresh[id] }
	r.idx.mu.RLock()
	for _, id := range packs {
		pi, ok := r.idx.packByID[id]
		switch {
		case !ok:
			unindexed = append(unindexed, id)
			if !asked(id) {
				recheck = append(recheck, id)
			}
		case r.idx.condemned[pi]:
			if !asked(id) {
				recheck = append(recheck, id)
			}
		case asked(id):
			stored = append(stored, id)
		}
	}
	r.idx.mu.RUnlock()
	if err := r.checkStored(ctx, recheck); err != nil {
		return err
	}
	if pending != nil {
		r.keepVerifiedPacks(stored, boot, began)
	}
	if len(unindexed) == 0 {
		return nil
	}
	found, damaged, err := r.readPackHeaders(ctx, unindexed)
	if err != nil {
		return err
	}
	if len(damaged) > 0 {
		return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(damaged, "; "))
	}
	// a collection that no longer counts a lapsed writer may be deleting
	// these packs right now (registrationsValid)
	if err := r.registrationsValid(); err != nil {
		return err
	}
	return r.addIndex(ctx, found)
}

// unfresh counts the packs not in fresh.
func unfresh(packs []ID, fresh map[ID]bool) int {
	n := 0
	for _, id := range packs {
		if !fresh[id] {
			n++
		}
	}
	return n
}

// checkStored looks the packs up in storage: by a request each, eight at a
// time, or by listing data/ when that costs less (lookupLimit).
func (r *Repository) checkStored(ctx context.Context, packs []ID) error {
	if len(packs) == 0 {
		return nil
	}
	if len(packs) > lookupLimit(r.storedPacks()) {
		stored, err := r.listStoredPacks(ctx)
		if err != nil {
			return err
		}
		return notStored(packs, stored)
	}
	gone := make([]bool, len(packs))
	if err := parallel(ctx, len(packs), 8, func(i int) error {
		_, err := r.be.Stat(ctx, packName(packs[i]))
		if errors.Is(err, storage.ErrNotFound) {
			gone[i] = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("checking pack %s: %w", packs[i].Short(), err)
		}
		return nil
	}); err != nil {
		return err
	}
	var missing []ID
	for i, g := range gone {
		if g {
			missing = append(missing, packs[i])
		}
	}
	return packsMissing(missing)
}

// storedPacks is how many packs the index holds (0: not loaded).
func (r *Repository) storedPacks() int {
	r.idx.mu.RLock()
	defer r.idx.mu.RUnlock()
	return len(r.idx.packs)
}

// listStoredPacks lists data/.
func (r *Repository) listStoredPacks(ctx context.Context) (map[ID]bool, error) {
	stored := map[ID]bool{}
	if err := r.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if id, err := ParseID(path.Base(oi.Name)); err == nil {
			stored[id] = true
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("checking packs: %w", err)
	}
	return stored, nil
}

// notStored is packsMissing for the packs a listing did not show.
func notStored(packs []ID, listed map[ID]bool) error {
	var missing []ID
	for _, id := range packs {
		if !listed[id] {
			missing = append(missing, id)
		}
	}
	return packsMissing(missing)
}

// packsMissing is ErrPacksMissing naming the packs (nil when none).
func packsMissing(packs []ID) error {
	var missing []string
	for _, id := range packs {
		missing = append(missing, id.Short())
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 10 {
			more = fmt.Sprintf(" and %d more", len(missing)-10)
			missing = missing[:10]
		}
		return fmt.Errorf("%w: %s%s", ErrPacksMissing, strings.Join(missing, ", "), more)
	}
	return nil
}
