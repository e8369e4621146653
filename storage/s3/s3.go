// Package s3 stores objects in an S3-compatible bucket (AWS S3, versitygw,
// MinIO, Ceph RGW, ...), optionally under a key prefix.
//
// S3 makes every object write atomic by itself, so Put needs no temporary
// name: an object is visible only once its PutObject or
// CompleteMultipartUpload succeeded, and an upload that fails midway is
// aborted (a multipart upload that is never completed is not an object).
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"backupd/storage"
)

// Defaults for Config's multipart fields.
const (
	DefaultMultipartThreshold = 64 << 20
	DefaultPartSize           = 16 << 20
	// MinPartSize is S3's smallest part (all parts but the last).
	MinPartSize = 5 << 20
	// maxParts is S3's limit on parts per upload; larger objects get
	// larger parts.
	maxParts = 10000
)

// Config locates a bucket and says how to reach it.
type Config struct {
	Bucket string
	// Prefix is prepended to every object name ("backups/host1"); a "/" is
	// added if missing. Empty: names are keys at the bucket's root.
	Prefix string
	// Endpoint is the server's base URL ("http://127.0.0.1:7070"); empty
	// means AWS. Without a scheme, https is assumed.
	Endpoint string
	// Region defaults to AWS_REGION from the environment, else us-east-1.
	Region string
	// PathStyle addresses the bucket as endpoint/bucket instead of
	// bucket.endpoint; most self-hosted servers want it.
	PathStyle bool
	// AccessKey and SecretKey; when empty the usual AWS sources are used
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, shared config, instance role).
	AccessKey string
	SecretKey string
	// CreateBucket creates the bucket if it does not exist.
	CreateBucket bool
	// QuotaBytes, if > 0, is reported by Capacity as the total size, and
	// free space is the quota minus what is stored. S3 itself has no limit.
	QuotaBytes int64
	// MultipartThreshold: objects larger than this are uploaded in parts
	// (default 64 MiB). PartSize is the size of each part but the last
	// (default 16 MiB; S3 refuses parts under 5 MiB). Settable mainly so
	// tests exercise multipart uploads with little data.
	MultipartThreshold int64
	PartSize           int64
	// Lock, when set, locks every object Put stores (but those Lock names
	// as unlocked) with S3 Object Lock: the server refuses to delete or
	// overwrite it, whoever asks, until the lock ends. The bucket must
	// have Object Lock enabled (CreateBucket creates it so).
	Lock *Lock
}

// Lock is how objects are locked.
type Lock struct {
	// Compliance: nobody, not even the account's root, can remove a
	// locked object or shorten its lock. Otherwise governance mode: a
	// user granted s3:BypassGovernanceRetention can (backupd never asks
	// to).
	Compliance bool
	// Period: how long Put locks a new object.
	Period time.Duration
	// Current, when set, gives the period at each Put instead (it may
	// follow a retention policy); a result <= 0 means Period.
	Current func() time.Duration
	// Unlocked reports names Put leaves unlocked; nil locks everything.
	Unlocked func(name string) bool
}

func (l *Lock) period() time.Duration {
	if l.Current != nil {
		if d := l.Current(); d > 0 {
			return d
		}
	}
	return l.Period
}

func (l *Lock) mode() types.ObjectLockMode {
	if l.Compliance {
		return types.ObjectLockModeCompliance
	}
	return types.ObjectLockModeGovernance
}

// Backend is a storage.Backend on an S3 bucket.
type Backend struct {
	client   *awss3.Client
	bucket   string
	prefix   string // "" or ending in "/"
	location string
	cfg      Config
}

var (
	_ storage.Backend = (*Backend)(nil)
	_ storage.Locker  = (*Backend)(nil)
)

// New connects to the bucket, creating it when cfg.CreateBucket is set, and
// checks that it is reachable with the credentials given.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Bucket == "" {
		return nil, storage.Permanent(errors.New("s3: no bucket given"))
	}
	if cfg.MultipartThreshold <= 0 {
		cfg.MultipartThreshold = DefaultMultipartThreshold
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < MinPartSize {
		// S3 (and versitygw) accept the parts but refuse to complete the upload.
		return nil, storage.Permanent(fmt.Errorf("s3: part size %d is below S3's minimum of %d", cfg.PartSize, MinPartSize))
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if storage.ValidName(prefix) != nil {
			return nil, storage.Permanent(fmt.Errorf("s3: invalid prefix %q", cfg.Prefix))
		}
		prefix += "/"
	}
	endpoint := cfg.Endpoint
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}

	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Newer SDKs add CRC checksums to every upload and check them on
		// downloads; S3-compatible servers do not all support that, and
		// with a seekable body the SDK would read it one more time.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})

	loc := "s3://" + cfg.Bucket + "/" + prefix
	if endpoint != "" {
		loc = "s3:" + strings.TrimSuffix(endpoint, "/") + "/" + cfg.Bucket + "/" + prefix
	}
	b := &Backend{client: client, bucket: cfg.Bucket, prefix: prefix, location: strings.TrimSuffix(loc, "/"), cfg: cfg}

	if cfg.CreateBucket {
		in := &awss3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)}
		if cfg.Lock != nil {
			in.ObjectLockEnabledForBucket = aws.Bool(true)
		}
		if awsCfg.Region != "us-east-1" {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
				LocationConstraint: types.BucketLocationConstraint(awsCfg.Region),
			}
		}
		if _, err := client.CreateBucket(ctx, in); err != nil {
			var owned *types.BucketAlreadyOwnedByYou
			if !errors.As(err, &owned) && !isCode(err, "BucketAlreadyOwnedByYou") {
				// BucketAlreadyExists (someone else's) and the like: HeadBucket tells.
				if _, herr := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); herr != nil {
					return nil, b.mapErr("create bucket", cfg.Bucket, err)
				}
			}
		}
	}
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		err = b.mapErr("open bucket", cfg.Bucket, err)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, storage.Permanent(fmt.Errorf("s3: bucket %q does not exist", cfg.Bucket))
		}
		return nil, err
	}
	if cfg.Lock != nil {
		if cfg.Lock.Period <= 0 {
			return nil, storage.Permanent(errors.New("s3: object lock without a period"))
		}
		out, err := client.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String(cfg.Bucket)})
		if err != nil && !isCode(err, "ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound") {
			return nil, b.mapErr("read the object lock configuration of bucket", cfg.Bucket, err)
		}
		if err == nil && out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.Rule != nil && out.ObjectLockConfiguration.Rule.DefaultRetention != nil {
			return nil, storage.Permanent(fmt.Errorf("s3: bucket %q has a default retention, which locks every object, the index and markers "+
				"backupd must rewrite too; remove it (`aws s3api put-object-lock-configuration --object-lock-configuration ObjectLockEnabled=Enabled`): "+
				"backupd locks what backups need itself", cfg.Bucket))
		}
		if err != nil || out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
			return nil, storage.Permanent(fmt.Errorf("s3: bucket %q does not have Object Lock enabled, and this location asks for locked objects; "+
				"create a new bucket with it (backupd does when it creates the bucket; `aws s3api create-bucket --object-lock-enabled-for-bucket`), "+
				"or turn it on for this one (versioning first, then `aws s3api put-object-lock-configuration`)", cfg.Bucket))
		}
	}
	return b, nil
}

// locks reports whether Put locks name.
func (b *Backend) locks(name string) bool {
	return b.cfg.Lock != nil && (b.cfg.Lock.Unlocked == nil || !b.cfg.Lock.Unlocked(name))
}

// LockPeriod is how long Put locks an object (0: it does not).
func (b *Backend) LockPeriod() time.Duration {
	if b.cfg.Lock == nil {
		return 0
	}
	return b.cfg.Lock.period()
}

// Unlocked reports whether Put leaves name unlocked.
func (b *Backend) Unlocked(name string) bool { return !b.locks(name) }

// ExtendLock makes name's lock end no earlier than until. S3 refuses to
// shorten a lock; when it refuses, the lock it has is read, and a lock
// already lasting long enough is success.
func (b *Backend) ExtendLock(ctx context.Context, name string, until time.Time) error {
	if b.cfg.Lock == nil {
		return storage.ErrNoLocks
	}
	if err := storage.ValidName(name); err != nil {
		return fmt.Errorf("s3: %q: %w", name, err)
	}
	until = until.UTC().Truncate(time.Second).Add(time.Second)
	_, err := b.client.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{
		Bucket:    aws.String(b.bucket),
		Key:       aws.String(b.key(name)),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(b.cfg.Lock.mode()), RetainUntilDate: aws.Time(until)},
	})
	if err == nil {
		return nil
	}
	err = b.mapErr("extend the lock of", name, err)
	out, herr := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))})
	if herr != nil {
		return err
	}
	if !aws.ToTime(out.ObjectLockRetainUntilDate).Before(until) {
		return nil
	}
	if m := out.ObjectLockMode; m != "" && m != b.cfg.Lock.mode() {
		// locked in the other mode (the location's mode changed since):
		// extended in its own, which the server allows
		_, err2 := b.client.PutObjectRetention(ctx, &awss3.PutObjectRetentionInput{
			Bucket:    aws.String(b.bucket),
			Key:       aws.String(b.key(name)),
			Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(m), RetainUntilDate: aws.Time(until)},
		})
		if err2 == nil {
			return nil
		}
	}
	return err
}

// lockOf is the end of name's lock, zero when unknown or unlocked.
func (b *Backend) lockOf(ctx context.Context, name string) time.Time {
	out, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))})
	if err != nil {
		return time.Time{}
	}
	return aws.ToTime(out.ObjectLockRetainUntilDate)
}

// lockHeaders are a locked Put's: the lock, and the MD5 of the content,
// which S3 wants with any upload that carries a lock.
func (b *Backend) lockUntil() *time.Time {
	t := time.Now().Add(b.cfg.Lock.period()).UTC().Truncate(time.Second).Add(time.Second)
	return &t
}

func contentMD5(r io.ReadSeeker, start, size int64) (string, error) {
	h := md5.New()
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	n, err := io.Copy(h, io.LimitReader(r, size+1))
	if err != nil {
		return "", err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	if n != size {
		return "", storage.Permanent(fmt.Errorf("%w: reader has %d bytes, not %d", storage.ErrSizeMismatch, n, size))
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// Client returns the underlying SDK client (for tests and tools).
func (b *Backend) Client() *awss3.Client { return b.client }

func (b *Backend) key(name string) string { return b.prefix + name }

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// mapErr turns SDK errors into the contract's errors.
func (b *Backend) mapErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3: %s %q: %w", op, name, err)
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	switch {
	case isCode(err, "NoSuchBucket"):
		return storage.Permanent(fmt.Errorf("s3: %s %q: bucket %q missing: %w", op, name, b.bucket, err))
	case errors.As(err, &nsk), errors.As(err, &nf), isCode(err, "NoSuchKey", "NotFound"), httpStatus(err) == http.StatusNotFound:
		return fmt.Errorf("s3: %s %q: %w", op, name, storage.ErrNotFound)
	case isCode(err, "InvalidRange"), httpStatus(err) == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("s3: %s %q: %w", op, name, storage.ErrInvalidRange)
	case isCode(err, "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName",
		"AllAccessDisabled", "AccountProblem", "InvalidObjectState", "EntityTooLarge", "EntityTooSmall"),
		httpStatus(err) == http.StatusForbidden, httpStatus(err) == http.StatusBadRequest && !isCode(err, "RequestTimeout"):
		return storage.Permanent(fmt.Errorf("s3: %s %q: %w", op, name, err))
	}
	return fmt.Errorf("s3: %s %q: %w", op, name, err)
}

func (b *Backend) Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error {
	if err := storage.ValidName(name); err != nil {
		return fmt.Errorf("s3: %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if size < 0 {
		return storage.Permanent(fmt.Errorf("s3: put %q: %w: negative size", name, storage.ErrSizeMismatch))
	}
	if size > b.cfg.MultipartThreshold {
		return b.putMultipart(ctx, name, r, size)
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("s3: put %q: %w", name, err)
	}
	in := &awss3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(b.key(name)),
		ContentLength: aws.Int64(size),
	}
	if b.locks(name) {
		sum, err := contentMD5(r, start, size)
		if err != nil {
			return fmt.Errorf("s3: put %q: %w", name, err)
		}
		in.ContentMD5 = aws.String(sum)
		// never a new version over a locked object (AWS keeps versions:
		// a plain Put would hide it); a bucket policy can require this
		in.IfNoneMatch = aws.String("*")
		in.ObjectLockMode = b.cfg.Lock.mode()
		in.ObjectLockRetainUntilDate = b.lockUntil()
	}
	var body *sizedBody
	for try := 0; ; try++ {
		body = &sizedBody{ctx: ctx, r: r, start: start, size: size}
		in.Body = body
		_, err = b.client.PutObject(ctx, in)
		// A server that keeps objects as files (versitygw's posix
		// backend) removes a directory a delete left empty; a put into
		// it at that moment is refused as if the name were a directory,
		// which none of ours is: try again.
		if err == nil || body.err != nil || !isCode(err, "ExistingObjectIsDirectory") || try == 4 {
			break
		}
		if _, serr := r.Seek(start, io.SeekStart); serr != nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(1+try) * 5 * time.Millisecond):
		}
	}
	if err != nil && body.err != nil {
		// The reader's own failure matters more than how the SDK reported it.
		err = fmt.Errorf("%w (%v)", body.err, err)
	}
	if err != nil && in.ContentMD5 != nil && (isCode(err, "AccessDenied", "PreconditionFailed") || httpStatus(err) == http.StatusPreconditionFailed) {
		return b.lockedPut(ctx, name, *in.ContentMD5, err)
	}
	return b.mapErr("put", name, err)
}

// lockedPut answers a locked Put the server refused: the name exists,
// locked. With the same content (a retry of a Put whose answer was lost)
// that is success; otherwise ErrLocked.
func (b *Backend) lockedPut(ctx context.Context, name, sum string, err error) error {
	out, herr := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))})
	if herr != nil {
		return b.mapErr("put", name, err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sum)
	if strings.Trim(aws.ToString(out.ETag), `"`) == hex.EncodeToString(raw) {
		return nil
	}
	if until := aws.ToTime(out.ObjectLockRetainUntilDate); time.Now().Before(until) {
		return storage.Permanent(fmt.Errorf("s3: put: %w: it cannot be replaced", &storage.LockError{Name: name, Until: until}))
	}
	return b.mapErr("put", name, err)
}

// sizedBody presents the size bytes of r from start as a seekable body (the
// SDK reads it once to sign it, then again to send it) and fails instead of
// ending when r holds fewer or more bytes. Reads stop when ctx is done.
type sizedBody struct {
	ctx   context.Context
	r     io.ReadSeeker
	start int64
	size  int64
	pos   int64
	err   error // first error of r or of the size check
}

func (s *sizedBody) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return err
}

func (s *sizedBody) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.pos >= s.size {
		var probe [1]byte
		n, err := io.ReadFull(s.r, probe[:])
		if n > 0 {
			return 0, s.fail(storage.Permanent(fmt.Errorf("%w: reader has more than %d bytes", storage.ErrSizeMismatch, s.size)))
		}
		if err == io.EOF {
			return 0, io.EOF
		}
		return 0, s.fail(err)
	}
	if int64(len(p)) > s.size-s.pos {
		p = p[:s.size-s.pos]
	}
	n, err := s.r.Read(p)
	s.pos += int64(n)
	if err == io.EOF {
		if s.pos < s.size {
			return n, s.fail(storage.Permanent(fmt.Errorf("%w: reader ended after %d of %d bytes", storage.ErrSizeMismatch, s.pos, s.size)))
		}
		err = nil
	}
	if err != nil {
		return n, s.fail(err)
	}
	return n, nil
}

func (s *sizedBody) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = s.pos + offset
	case io.SeekEnd:
		abs = s.size + offset
	default:
		return 0, errors.New("s3: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("s3: seek before start")
	}
	if _, err := s.r.Seek(s.start+abs, io.SeekStart); err != nil {
		return 0, s.fail(err)
	}
	s.pos = abs
	return abs, nil
}

func (b *Backend) putMultipart(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	key := b.key(name)
	cin := &awss3.CreateMultipartUploadInput{
		Bucket: aws.String(b.bucket),
		Key:    aws.String(key),
	}
	locked := b.locks(name)
	if locked {
		cin.ObjectLockMode = b.cfg.Lock.mode()
		cin.ObjectLockRetainUntilDate = b.lockUntil()
	}
	up, err := b.client.CreateMultipartUpload(ctx, cin)
	if err != nil {
		return b.mapErr("put", name, err)
	}
	defer func() {
		if err != nil {
			// Abort even when ctx is cancelled: the parts would cost space.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = b.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
				Bucket: aws.String(b.bucket), Key: aws.String(key), UploadId: up.UploadId,
			})
		}
	}()
	src := storage.ExactReader(storage.ContextReader(ctx, r), size)
	partSize := max(b.cfg.PartSize, (size+maxParts-1)/maxParts)
	buf := make([]byte, min(partSize, size))
	var parts []types.CompletedPart
	for num, left := int32(1), size; left > 0; num++ {
		n := min(int64(len(buf)), left)
		if _, err := io.ReadFull(src, buf[:n]); err != nil {
			return b.mapErr("put", name, err)
		}
		left -= n
		if left == 0 {
			// Fail on a reader with too much data before anything is committed.
			if _, err := src.Read(make([]byte, 1)); err != io.EOF {
				return b.mapErr("put", name, err)
			}
		}
		pin := &awss3.UploadPartInput{
			Bucket:        aws.String(b.bucket),
			Key:           aws.String(key),
			UploadId:      up.UploadId,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader(buf[:n]),
			ContentLength: aws.Int64(n),
		}
		if locked {
			sum := md5.Sum(buf[:n])
			pin.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
		}
		out, err := b.client.UploadPart(ctx, pin)
		if err != nil {
			return b.mapErr("put", name, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	}
	cmp := &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.bucket),
		Key:             aws.String(key),
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if locked {
		cmp.IfNoneMatch = aws.String("*")
	}
	_, err = b.client.CompleteMultipartUpload(ctx, cmp)
	if err != nil && locked && (isCode(err, "AccessDenied", "PreconditionFailed") || httpStatus(err) == http.StatusPreconditionFailed) {
		if until := b.lockOf(ctx, name); !until.IsZero() {
			return storage.Permanent(fmt.Errorf("s3: put: %w: it cannot be replaced", &storage.LockError{Name: name, Until: until}))
		}
	}
	return b.mapErr("put", name, err)
}

func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.ValidName(name); err != nil {
		return nil, fmt.Errorf("s3: %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3: get %q: %w: offset %d", name, storage.ErrInvalidRange, offset)
	}
	if length == 0 {
		// HTTP cannot ask for zero bytes; check the object and range instead.
		info, err := b.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		if _, err := storage.CheckRange(info.Size, offset, length); err != nil {
			return nil, fmt.Errorf("s3: get %q: %w", name, err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &awss3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		err = b.mapErr("get", name, err)
		if errors.Is(err, storage.ErrInvalidRange) && length < 0 {
			// "bytes=size-" is unsatisfiable for S3 but an empty range for us.
			info, serr := b.Stat(ctx, name)
			if serr != nil {
				return nil, serr
			}
			if info.Size == offset {
				return io.NopCloser(strings.NewReader("")), nil
			}
		}
		return nil, err
	}
	if length > 0 && aws.ToInt64(out.ContentLength) != length {
		// S3 shortens a range that runs past the end instead of refusing it.
		out.Body.Close()
		return nil, fmt.Errorf("s3: get %q: %w: %d bytes at %d, got %d", name, storage.ErrInvalidRange, length, offset, aws.ToInt64(out.ContentLength))
	}
	return out.Body, nil
}

func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := storage.ValidName(name); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, err
	}
	out, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))})
	if err != nil {
		return storage.ObjectInfo{}, b.mapErr("stat", name, err)
	}
	return storage.ObjectInfo{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified),
		LockedUntil: aws.ToTime(out.ObjectLockRetainUntilDate)}, nil
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := awss3.NewListObjectsV2Paginator(b.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(b.bucket),
		Prefix: aws.String(b.key(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, fastListDecoding)
		if err != nil {
			return b.mapErr("list", prefix, err)
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), b.prefix)
			if storage.ValidName(name) != nil {
				continue // a "dir/" marker or a key no backend could store
			}
			if err := fn(storage.ObjectInfo{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListFirst is one request for up to max keys: S3 lists in byte order of
// the keys (storage.ListFirst checks, and lists whole when not).

var _ storage.FirstLister = (*Backend)(nil)

func (b *Backend) ListFirst(ctx context.Context, prefix string, max int, fn func(storage.ObjectInfo) error) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	page, err := b.client.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{
		Bucket:  aws.String(b.bucket),
		Prefix:  aws.String(b.key(prefix)),
		MaxKeys: aws.Int32(int32(min(max, 1000))),
	}, fastListDecoding)
	if err != nil {
		return false, b.mapErr("list", prefix, err)
	}
	for _, o := range page.Contents {
		name := strings.TrimPrefix(aws.ToString(o.Key), b.prefix)
		if storage.ValidName(name) != nil {
			continue // a "dir/" marker or a key no backend could store
		}
		if err := fn(storage.ObjectInfo{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
			return false, err
		}
	}
	return aws.ToBool(page.IsTruncated), nil
}

// Delete checks that the object exists first: S3's DeleteObject succeeds
// for missing keys, and the contract wants ErrNotFound. A locked object
// is ErrLocked without asking (the server would refuse). In a bucket with
// versions (Object Lock turns them on in AWS), a name this location locks
// is deleted by its version, which frees its storage; any other name is
// hidden behind a delete marker, as in every versioned bucket (a
// lifecycle rule expiring noncurrent versions frees those).
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := storage.ValidName(name); err != nil {
		return fmt.Errorf("s3: %q: %w", name, err)
	}
	out, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))})
	if err != nil {
		return b.mapErr("delete", name, err)
	}
	if until := aws.ToTime(out.ObjectLockRetainUntilDate); time.Now().Before(until) {
		return storage.Permanent(fmt.Errorf("s3: delete: %w", &storage.LockError{Name: name, Until: until}))
	}
	in := &awss3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key(name))}
	if v := aws.ToString(out.VersionId); v != "" && v != "null" && b.locks(name) {
		// a locked name is written once: its one version goes, and its
		// storage with it. An unlocked one (a marker rewritten every
		// minute) is hidden behind a delete marker instead: deleting its
		// newest version would bring back the one before.
		in.VersionId = aws.String(v)
	}
	_, err = b.client.DeleteObject(ctx, in)
	if err != nil && isCode(err, "AccessDenied") && b.cfg.Lock != nil {
		if oi, serr := b.Stat(ctx, name); serr == nil && time.Now().Before(oi.LockedUntil) {
			return storage.Permanent(fmt.Errorf("s3: delete: %w (%v)", &storage.LockError{Name: name, Until: oi.LockedUntil}, err))
		}
	}
	return b.mapErr("delete", name, err)
}

// Capacity sums the sizes of the objects under the prefix (one listing);
// total and free are unknown (-1) unless a quota was configured.
func (b *Backend) Capacity(ctx context.Context) (storage.Capacity, error) {
	var used int64
	if err := b.List(ctx, "", func(oi storage.ObjectInfo) error { used += oi.Size; return nil }); err != nil {
		return storage.Capacity{}, err
	}
	c := storage.Capacity{TotalBytes: -1, FreeBytes: -1, UsedBytes: used}
	if q := b.cfg.QuotaBytes; q > 0 {
		c.TotalBytes = q
		c.FreeBytes = max(0, q-used)
	}
	return c, nil
}

// Location is "s3://bucket/prefix", or "s3:<endpoint>/bucket/prefix" for a
// server other than AWS.
func (b *Backend) Location() string { return b.location }

func (b *Backend) Close() error { return nil }
