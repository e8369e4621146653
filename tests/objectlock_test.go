package tests

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"backupd/config"
	"backupd/storage/s3"
)

// TestImmutableLocations: an S3 location with Object Lock, and an
// append-only SFTP location. A backup's objects in the first are locked
// on the server: deleting the backup through the API takes it out of
// every list at once, while the server itself refuses to delete its
// objects (with the credential backupd holds, version and all) until
// their locks end. The append-only location keeps them until a
// maintenance run with a credential that may delete. The cleanup report
// says what waits where. (That an SFTP server can enforce append-only for
// the account is storage/appendonly's test.)
func TestImmutableLocations(t *testing.T) {
	s := startAPIStackWith(t, "sqlite", func(*apiStack) {}, func(c *config.Config) {
		cloud := c.Storage["cloud"]
		cloud.URL = strings.Replace(cloud.URL, "s3://apitest/", "s3://lockedtest/", 1)
		cloud.ObjectLock = &config.ObjectLock{Mode: "compliance", Period: "1h"}
		c.Storage["cloud"] = cloud
		remote := c.Storage["remote"]
		remote.AppendOnly = true
		c.Storage["remote"] = remote
		c.GCSafetyWindow = "0s"
	})
	const v1 = "/v1/cloud-integration/backup"
	cr := s.must(200, "POST", v1+"/create", "operator", map[string]any{"type": "full", "components": map[string]bool{"configurations": true},
		"storage_locations": []string{"local", "cloud", "remote"}})
	backupID := cr["backup_id"].(string)
	if p := s.waitJob(t, v1+"/progress?job_id="+cr["job_id"].(string)); p["status"] != "completed" {
		t.Fatalf("backup: %v", p)
	}

	ctx := context.Background()
	be, err := s3.New(ctx, s3.Config{Bucket: "lockedtest", Endpoint: s.s3.Endpoint, PathStyle: true, Region: "us-east-1",
		AccessKey: s.s3.AccessKey, SecretKey: s.s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	raw := be.Client()
	objects := func(prefix string) []string {
		out, err := raw.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("lockedtest"), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		return keys
	}
	packs := objects("cloud/data/")
	manifest := "cloud/manifests/" + backupID
	if len(packs) == 0 || len(objects(manifest)) != 1 {
		t.Fatalf("the backup's objects in the bucket: packs %v, manifest %v", packs, objects(manifest))
	}
	for _, k := range append(packs, manifest) {
		h, err := raw.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("lockedtest"), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		if h.ObjectLockMode != "COMPLIANCE" || time.Until(aws.ToTime(h.ObjectLockRetainUntilDate)) < 50*time.Minute {
			t.Fatalf("%s: lock %s until %v, want compliance for an hour", k, h.ObjectLockMode, h.ObjectLockRetainUntilDate)
		}
	}

	// shown as immutable where an operator and an auditor look
	st := s.must(200, "GET", v1+"/storage", "viewer", nil)
	if get(st, "storage_config.cloud.immutability.mode") != "object_lock" || get(st, "storage_config.cloud.immutability.lock_mode") != "compliance" ||
		get(st, "storage_config.cloud.immutability.lock_period_seconds") != float64(3600) ||
		get(st, "storage_config.remote.immutability.mode") != "append_only" || get(st, "storage_config.local.immutability") != nil {
		t.Fatalf("storage: %v", get(st, "storage_config"))
	}
	cp := s.must(200, "GET", v1+"/reports/compliance?period=24h", "admin", nil)
	if n := len(get(cp, "immutable_locations").([]any)); n != 2 {
		t.Fatalf("compliance immutable locations: %v", get(cp, "immutable_locations"))
	}
	for _, c := range get(cp, "components").([]any) {
		if c.(map[string]any)["component"] == "configurations" && c.(map[string]any)["immutable_copies"] != "1/1" {
			t.Fatalf("compliance: %v", c)
		}
	}

	// deleted through the API: gone from the lists at once
	dl := s.must(202, "DELETE", v1+"/"+backupID+"?force=true", "admin", nil)
	rep := s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+dl["cleanup_id"].(string))
	if rep["status"] != "completed" {
		t.Fatalf("delete report: %v", rep)
	}
	if code, _ := s.do("GET", v1+"/details/"+backupID, "viewer", nil); code != 404 {
		t.Fatalf("deleted backup still listed: %d", code)
	}
	// (S3 times are in whole seconds: the packs, and the collection the
	// delete ran, are older than the next collection)
	time.Sleep(1100 * time.Millisecond)
	// a cleanup collects: the local location frees the backup's packs; the
	// locked one keeps them, and says until when
	cl := s.must(200, "POST", "/v1/cloud-integration/backup/cleanup", "admin", map[string]any{"dry_run": false, "target_storage": []string{"local", "cloud", "remote"}})
	rep = s.waitJob(t, "/cloud-integration/backup/cleanup/report/"+cl["cleanup_id"].(string))
	js, _ := json.Marshal(rep)
	t.Logf("cleanup report: %s", js)
	locks := get(rep, "outcome.gc.cloud.locks")
	if locks == nil || get(rep, "outcome.gc.cloud.locks.waiting_packs").(float64) < 1 || get(rep, "outcome.gc.cloud.locks.waiting_manifests").(float64) != 1 {
		t.Fatalf("cleanup on the locked location: locks %v (report %s)", locks, js)
	}
	if get(rep, "outcome.gc.remote.locks.append_only") != true || get(rep, "outcome.gc.remote.locks.waiting_packs").(float64) < 1 ||
		get(rep, "outcome.gc.remote.locks.waiting_manifests").(float64) != 1 || get(rep, "outcome.gc.remote.deleted").(float64) != 0 {
		t.Fatalf("cleanup on the append-only location: %v", get(rep, "outcome.gc.remote"))
	}

	// the server refuses to delete them, whoever asks
	for _, k := range append(packs, manifest) {
		h, err := raw.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("lockedtest"), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("%s after the delete and the cleanup: %v", k, err)
		}
		_, err = raw.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("lockedtest"), Key: aws.String(k),
			VersionId: h.VersionId, BypassGovernanceRetention: aws.Bool(true)})
		if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Fatalf("the server deleted locked %s: %v", k, err)
		}
	}
	if got := objects("cloud/data/"); len(got) != len(packs) {
		t.Fatalf("packs now %d, were %d", len(got), len(packs))
	}
}
