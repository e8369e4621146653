package storage

import (
	"context"
	"sort"
)

// FirstLister is a backend that can list the first objects of a prefix,
// in name order, without listing the rest (S3's max-keys: a listing of
// the newest of many objects named to sort newest first costs what
// listing a few does). Decorators implement it by calling ListFirst on
// the backend below.
type FirstLister interface {
	// ListFirst calls fn for up to max objects whose names start with
	// prefix, the first in byte order of their names, in that order, and
	// reports whether the prefix holds more.
	ListFirst(ctx context.Context, prefix string, max int, fn func(ObjectInfo) error) (more bool, err error)
}

// ListFirst calls fn for the first max objects (in byte order of their
// names) whose names start with prefix, in that order, and reports
// whether there are more. A backend that is not a FirstLister, or whose
// answer is not in order, is listed whole and the answer taken from that.
func ListFirst(ctx context.Context, b Backend, prefix string, max int, fn func(ObjectInfo) error) (bool, error) {
	if max < 1 {
		max = 1
	}
	if fl, ok := b.(FirstLister); ok {
		var got []ObjectInfo
		more, err := fl.ListFirst(ctx, prefix, max, func(oi ObjectInfo) error {
			got = append(got, oi)
			return nil
		})
		if err != nil {
			return false, err
		}
		if len(got) <= max && sort.SliceIsSorted(got, func(i, j int) bool { return got[i].Name < got[j].Name }) && distinct(got) {
			for _, oi := range got {
				if err := fn(oi); err != nil {
					return false, err
				}
			}
			return more, nil
		}
		// not in order (a server that does not keep S3's): listed whole
	}
	var all []ObjectInfo
	if err := b.List(ctx, prefix, func(oi ObjectInfo) error {
		all = append(all, oi)
		return nil
	}); err != nil {
		return false, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	for i, oi := range all {
		if i == max {
			return true, nil
		}
		if err := fn(oi); err != nil {
			return false, err
		}
	}
	return false, nil
}

func distinct(ois []ObjectInfo) bool {
	for i := 1; i < len(ois); i++ {
		if ois[i-1].Name == ois[i].Name {
			return false
		}
	}
	return true
}
