package s3_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"backupd/storage"
	"backupd/storage/s3"
	"backupd/storage/s3/s3test"
	"backupd/storage/storagetest"
)

func lockedConfig(srv *s3test.Server, bucket string, compliance bool, period time.Duration) s3.Config {
	cfg := srv.Config(bucket, "repo")
	cfg.Lock = &s3.Lock{Compliance: compliance, Period: period, Unlocked: func(n string) bool { return strings.HasPrefix(n, "index/") }}
	return cfg
}

func put(t *testing.T, be storage.Backend, name, data string) error {
	t.Helper()
	return be.Put(context.Background(), name, strings.NewReader(data), int64(len(data)))
}

// TestObjectLock: what a locked location stores, the server itself refuses
// to delete or overwrite, whoever asks; backupd says so before asking.
func TestObjectLock(t *testing.T) {
	srv := s3test.StartTB(t)
	ctx := context.Background()
	be := s3test.NewBackend(t, lockedConfig(srv, "locked-gov", false, time.Hour))
	raw := be.Client()
	key := aws.String("repo/data/aa/pack")

	if err := put(t, be, "data/aa/pack", "pack bytes"); err != nil {
		t.Fatal(err)
	}
	oi, err := be.Stat(ctx, "data/aa/pack")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(oi.LockedUntil); d < 59*time.Minute || d > 62*time.Minute {
		t.Fatalf("locked until %v (in %v), want about an hour", oi.LockedUntil, d)
	}
	if err := be.Delete(ctx, "data/aa/pack"); !errors.Is(err, storage.ErrLocked) || !storage.IsPermanent(err) {
		t.Fatalf("Delete of a locked object: %v, want permanent ErrLocked", err)
	}
	// the server's own refusal, with the same credential, version and all
	h, err := raw.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("locked-gov"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("locked-gov"), Key: key, VersionId: h.VersionId}); err == nil {
		t.Fatal("the server deleted a locked object")
	}
	if _, err := raw.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("locked-gov"), Key: key, Body: strings.NewReader("other")}); err == nil {
		t.Fatal("the server overwrote a locked object")
	}
	if got, _ := storage.ReadAll(ctx, be, "data/aa/pack"); string(got) != "pack bytes" {
		t.Fatalf("locked object now holds %q", got)
	}
	// a retried Put of the same bytes succeeds; other bytes are refused
	if err := put(t, be, "data/aa/pack", "pack bytes"); err != nil {
		t.Fatalf("Put again of the same content: %v", err)
	}
	if err := put(t, be, "data/aa/pack", "other bytes"); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("Put over a locked object: %v, want ErrLocked", err)
	}
	// names the caller keeps unlocked come and go
	if err := put(t, be, "index/1", "idx"); err != nil {
		t.Fatal(err)
	}
	if err := be.Delete(ctx, "index/1"); err != nil {
		t.Fatalf("Delete of an unlocked name: %v", err)
	}
	// extended, never shortened
	later := time.Now().Add(2 * time.Hour)
	if err := be.ExtendLock(ctx, "data/aa/pack", later); err != nil {
		t.Fatal(err)
	}
	if err := be.ExtendLock(ctx, "data/aa/pack", time.Now().Add(30*time.Minute)); err != nil {
		t.Fatalf("ExtendLock to an earlier time: %v, want nil (nothing to do)", err)
	}
	if oi, _ := be.Stat(ctx, "data/aa/pack"); oi.LockedUntil.Before(later) {
		t.Fatalf("lock ends %v after extending to %v", oi.LockedUntil, later)
	}
	// multipart uploads are locked too
	mcfg := lockedConfig(srv, "locked-gov", false, time.Hour)
	mcfg.MultipartThreshold, mcfg.PartSize = s3.MinPartSize, s3.MinPartSize
	mbe := s3test.NewBackend(t, mcfg)
	big := bytes.Repeat([]byte("x"), s3.MinPartSize+100)
	if err := mbe.Put(ctx, "data/bb/big", bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if err := mbe.Delete(ctx, "data/bb/big"); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("Delete of a locked multipart object: %v", err)
	}
}

func TestObjectLockCompliance(t *testing.T) {
	srv := s3test.StartTB(t)
	ctx := context.Background()
	be := s3test.NewBackend(t, lockedConfig(srv, "locked-comp", true, time.Hour))
	if err := put(t, be, "manifests/b1", "manifest"); err != nil {
		t.Fatal(err)
	}
	// not even a credential allowed to bypass governance locks (versitygw's
	// root is) removes it
	_, err := be.Client().DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("locked-comp"),
		Key: aws.String("repo/manifests/b1"), BypassGovernanceRetention: aws.Bool(true)})
	if err == nil {
		t.Fatal("the server deleted an object under a compliance lock")
	}
	if _, err := be.Stat(ctx, "manifests/b1"); err != nil {
		t.Fatal(err)
	}
}

func TestObjectLockExpires(t *testing.T) {
	srv := s3test.StartTB(t)
	ctx := context.Background()
	be := s3test.NewBackend(t, lockedConfig(srv, "locked-short", false, 2*time.Second))
	if err := put(t, be, "data/cc/p", "p"); err != nil {
		t.Fatal(err)
	}
	if err := be.Delete(ctx, "data/cc/p"); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("Delete while locked: %v", err)
	}
	time.Sleep(3500 * time.Millisecond)
	if err := be.Delete(ctx, "data/cc/p"); err != nil {
		t.Fatalf("Delete once the lock ended: %v", err)
	}
	if _, err := be.Stat(ctx, "data/cc/p"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}

// A bucket made without Object Lock cannot give what the location asks.
func TestObjectLockNeedsLockedBucket(t *testing.T) {
	srv := s3test.StartTB(t)
	s3test.NewBackend(t, srv.Config("plain", "")) // created without lock
	cfg := lockedConfig(srv, "plain", false, time.Hour)
	_, err := s3.New(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not have Object Lock enabled") {
		t.Fatalf("opening a plain bucket as locked: %v", err)
	}
}

// With every name unlocked, a locked bucket still keeps the contract.
func TestConformanceLockedBucket(t *testing.T) {
	srv := s3test.StartTB(t)
	storagetest.Run(t, freshPrefix(srv, func(c *s3.Config) {
		c.Bucket = "locked-conf"
		c.Lock = &s3.Lock{Period: time.Hour, Unlocked: func(string) bool { return true }}
	}))
}

// A bucket whose default retention would lock the index and markers too
// is refused, naming the fix.
func TestObjectLockRefusesDefaultRetention(t *testing.T) {
	srv := s3test.StartTB(t)
	ctx := context.Background()
	be := s3test.NewBackend(t, lockedConfig(srv, "defret", false, time.Hour))
	_, err := be.Client().PutObjectLockConfiguration(ctx, &awss3.PutObjectLockConfigurationInput{Bucket: aws.String("defret"),
		ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled,
			Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.New(ctx, lockedConfig(srv, "defret", false, time.Hour)); err == nil || !strings.Contains(err.Error(), "default retention") {
		t.Fatalf("opening a bucket with a default retention: %v", err)
	}
}

// A location switched from compliance to governance still extends the
// objects locked in compliance mode (in their own mode).
func TestObjectLockExtendsInTheObjectsMode(t *testing.T) {
	srv := s3test.StartTB(t)
	ctx := context.Background()
	comp := s3test.NewBackend(t, lockedConfig(srv, "modes", true, time.Hour))
	if err := put(t, comp, "data/dd/p", "p"); err != nil {
		t.Fatal(err)
	}
	gov := s3test.NewBackend(t, lockedConfig(srv, "modes", false, time.Hour))
	later := time.Now().Add(3 * time.Hour)
	if err := gov.ExtendLock(ctx, "data/dd/p", later); err != nil {
		t.Fatalf("extending a compliance lock from a governance location: %v", err)
	}
	if oi, _ := gov.Stat(ctx, "data/dd/p"); oi.LockedUntil.Before(later) {
		t.Fatalf("lock ends %v, want after %v", oi.LockedUntil, later)
	}
}
