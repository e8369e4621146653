package storage

import (
	"context"
	"fmt"
	"io"
)

// ExactReader returns a reader that yields exactly the size bytes Put was
// promised. It reads r up to size bytes; if r ends early, or still has data
// after size bytes, the returned reader fails with ErrSizeMismatch (marked
// permanent) instead of returning io.EOF, so a backend that copies it to a
// temporary object until EOF never commits data of the wrong size.
// Errors from r are passed on unchanged.
func ExactReader(r io.Reader, size int64) io.Reader {
	return &exactReader{r: r, left: size, size: size}
}

type exactReader struct {
	r    io.Reader
	left int64
	size int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		// Make sure r has nothing more to give.
		var probe [1]byte
		for {
			n, err := e.r.Read(probe[:])
			if n > 0 {
				e.err = Permanent(fmt.Errorf("%w: reader has more than %d bytes", ErrSizeMismatch, e.size))
				return 0, e.err
			}
			if err == io.EOF {
				e.err = io.EOF
				return 0, io.EOF
			}
			if err != nil {
				e.err = err
				return 0, err
			}
		}
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			e.err = Permanent(fmt.Errorf("%w: reader ended after %d of %d bytes", ErrSizeMismatch, e.size-e.left, e.size))
			return n, e.err
		}
		err = nil // the probe on the next call returns EOF
	}
	if err != nil {
		e.err = err
	}
	return n, err
}

// ContextReader returns a reader whose Read fails with ctx's error once ctx
// is done, so a copy loop over a slow or endless source stops promptly.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ContextReadCloser is ContextReader for the readers Get returns.
func ContextReadCloser(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{ContextReader(ctx, rc), rc}
}
