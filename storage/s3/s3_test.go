package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"backupd/storage"
	"backupd/storage/s3"
	"backupd/storage/s3/s3test"
	"backupd/storage/storagetest"
)

var prefixes atomic.Int64

// freshPrefix gives each subtest its own empty part of the bucket.
func freshPrefix(srv *s3test.Server, mutate func(*s3.Config)) func(t *testing.T) storage.Backend {
	return func(t *testing.T) storage.Backend {
		cfg := srv.Config("conformance", fmt.Sprintf("run/%d", prefixes.Add(1)))
		if mutate != nil {
			mutate(&cfg)
		}
		return s3test.NewBackend(t, cfg)
	}
}

func TestConformance(t *testing.T) {
	srv := s3test.StartTB(t)
	storagetest.Run(t, freshPrefix(srv, nil))
}

// TestConformanceMultipart runs the suite with tiny multipart settings so
// the several-MiB objects go through multipart uploads.
func TestConformanceMultipart(t *testing.T) {
	srv := s3test.StartTB(t)
	storagetest.Run(t, freshPrefix(srv, func(c *s3.Config) {
		c.MultipartThreshold = s3.MinPartSize
		c.PartSize = s3.MinPartSize
	}))
}

// TestConformanceNoPrefix uses the bucket's root.
func TestConformanceNoPrefix(t *testing.T) {
	srv := s3test.StartTB(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		n++
		return s3test.NewBackend(t, srv.Config(fmt.Sprintf("bucket-%d", n), ""))
	})
}

func TestFaults(t *testing.T) {
	srv := s3test.StartTB(t)
	storagetest.RunFaults(t, freshPrefix(srv, func(c *s3.Config) {
		c.MultipartThreshold = s3.MinPartSize
		c.PartSize = s3.MinPartSize
	}))
}

func TestMultipartUpload(t *testing.T) {
	srv := s3test.StartTB(t)
	cfg := srv.Config("multipart", "x")
	cfg.MultipartThreshold = s3.MinPartSize
	cfg.PartSize = s3.MinPartSize
	b := s3test.NewBackend(t, cfg)
	data := storagetest.Data(1, 2*s3.MinPartSize+12345)
	storagetest.Put(t, b, "big", data)
	storagetest.Expect(t, b, "big", data)
	// A multipart object's ETag ends in -<parts>.
	out, err := b.Client().HeadObject(context.Background(), &awss3.HeadObjectInput{Bucket: aws.String("multipart"), Key: aws.String("x/big")})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(out.ETag); !bytes.HasSuffix([]byte(etag), []byte(`-3"`)) {
		t.Errorf("ETag %s does not name 3 parts", etag)
	}
	// A failed multipart upload leaves no upload behind.
	err = b.Put(context.Background(), "broken", storagetest.NewFailingReader(data, int64(len(data))-10), int64(len(data)))
	if !errors.Is(err, storagetest.ErrReaderBroke) {
		t.Fatalf("broken multipart Put = %v", err)
	}
	ups, err := b.Client().ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String("multipart")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after a failed Put", len(ups.Uploads))
	}
}

func TestCapacityQuota(t *testing.T) {
	srv := s3test.StartTB(t)
	cfg := srv.Config("quota", "")
	cfg.QuotaBytes = 10 << 20
	b := s3test.NewBackend(t, cfg)
	storagetest.Put(t, b, "a", make([]byte, 1<<20))
	storagetest.Put(t, b, "b/c", make([]byte, 2<<20))
	c, err := b.Capacity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c != (storage.Capacity{TotalBytes: 10 << 20, FreeBytes: 7 << 20, UsedBytes: 3 << 20}) {
		t.Fatalf("Capacity = %+v", c)
	}
	cfg.QuotaBytes = 0
	b2 := s3test.NewBackend(t, cfg)
	if c, err := b2.Capacity(context.Background()); err != nil || c != (storage.Capacity{TotalBytes: -1, FreeBytes: -1, UsedBytes: 3 << 20}) {
		t.Fatalf("Capacity without quota = %+v, %v", c, err)
	}
}

func TestBadCredentialsArePermanent(t *testing.T) {
	srv := s3test.StartTB(t)
	cfg := srv.Config("creds", "")
	s3test.NewBackend(t, cfg) // creates the bucket
	cfg.SecretKey = "wrong"
	cfg.CreateBucket = false
	_, err := s3.New(context.Background(), cfg)
	if err == nil || !storage.IsPermanent(err) {
		t.Fatalf("New with a wrong secret = %v; want a permanent error", err)
	}
	cfg = srv.Config("no-such-bucket", "")
	cfg.CreateBucket = false
	if _, err := s3.New(context.Background(), cfg); err == nil || !storage.IsPermanent(err) {
		t.Fatalf("New on a missing bucket = %v; want a permanent error", err)
	}
}

func TestLocation(t *testing.T) {
	srv := s3test.StartTB(t)
	b := s3test.NewBackend(t, srv.Config("loc", "some/prefix/"))
	if want := "s3:" + srv.Endpoint + "/loc/some/prefix"; b.Location() != want {
		t.Fatalf("Location = %q; want %q", b.Location(), want)
	}
}

func TestPartSizeBelowMinimumRefused(t *testing.T) {
	srv := s3test.StartTB(t)
	cfg := srv.Config("parts", "")
	cfg.PartSize = 1 << 20
	if _, err := s3.New(context.Background(), cfg); err == nil || !storage.IsPermanent(err) {
		t.Fatalf("New with 1 MiB parts = %v; want a permanent error", err)
	}
}

// Requests reuse their connections, as they do on S3: the test server
// had keep-alive off, so every request opened a connection (case D's
// benchmark opened some 14 a backup and left thousands in TIME-WAIT).
func TestConnectionsAreReused(t *testing.T) {
	srv := s3test.StartTB(t)
	be := s3test.NewBackend(t, srv.Config("reuse", "p"))
	var opened, reused atomic.Int64
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused.Add(1)
		} else {
			opened.Add(1)
		}
	}})
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("x/%d", i)
		if err := be.Put(ctx, name, strings.NewReader("hello"), 5); err != nil {
			t.Fatal(err)
		}
		if _, err := be.Stat(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := storage.ReadAll(ctx, be, name); err != nil {
			t.Fatal(err)
		}
		if _, err := be.Stat(ctx, name+"-missing"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		if err := be.List(ctx, "x/", func(storage.ObjectInfo) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := be.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if opened.Load() > 1 {
		t.Fatalf("%d connections opened for %d requests", opened.Load(), opened.Load()+reused.Load())
	}
}

// The server answers ListFirst itself (max-keys), in order, no more than
// asked for: storage.ListFirst's fallback (a whole listing) is not what
// the conformance suite saw.
func TestListFirstAsksTheServer(t *testing.T) {
	srv := s3test.StartTB(t)
	b := freshPrefix(srv, nil)(t).(*s3.Backend)
	ctx := context.Background()
	for _, n := range []string{"p/c", "p/a", "p/e", "p/b", "p/d"} {
		if err := b.Put(ctx, n, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	more, err := b.ListFirst(ctx, "p/", 2, func(oi storage.ObjectInfo) error {
		got = append(got, oi.Name)
		return nil
	})
	if err != nil || !more || strings.Join(got, " ") != "p/a p/b" {
		t.Fatalf("first 2: %v, more %v, %v", got, more, err)
	}
}
