package sources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Stream is a source read from a program rather than a file: a database
// dump, written into the backup as one file under the component's
// "@dumps" directory, chunked as it arrives (no temporary copy).
type Stream struct {
	Name string // file name under @dumps
	// Optional streams (roles and other globals, which need a superuser)
	// that fail leave a warning instead of failing the component.
	Optional bool
	Open     func(ctx context.Context) (io.ReadCloser, error)
}

// DumpsDir is the directory of a component's tree that holds its streams.
const DumpsDir = "@dumps"

// Database is one database connection of a component.
type Database struct {
	Kind     string // postgresql | mariadb
	Name     string // label; dump files are <name>.dump and <name>.globals.sql
	Host     string
	Port     int
	User     string
	DBName   string
	PassFile string // postgresql: a pgpass file; mariadb: an option file ([client] password=…)
	Password string // discouraged (prefer PassFile); never logged or stored in a backup
	Globals  bool   // postgresql: also pg_dumpall --globals-only (roles, tablespaces)
}

var dbNameRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_$]{0,62}$`)

// ValidDBName accepts plain database names only.
func ValidDBName(s string) bool { return dbNameRe.MatchString(s) }

// Label is the database's name in dump file names.
func (d Database) Label() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Kind + "-" + d.DBName
}

// DumpFile is the name of the database's dump in @dumps.
func (d Database) DumpFile() string { return d.Label() + ".dump" }

// Validate checks a connection's settings.
func (d Database) Validate() error {
	switch d.Kind {
	case "postgresql", "mariadb":
	default:
		return fmt.Errorf("kind %q (want postgresql or mariadb)", d.Kind)
	}
	if d.DBName == "" {
		return errors.New("database: empty")
	}
	if !ValidDBName(d.DBName) {
		return fmt.Errorf("database %q: use letters, digits, _ and $ (at most 63)", d.DBName)
	}
	if strings.HasPrefix(d.Host, "-") || strings.HasPrefix(d.User, "-") || strings.Contains(d.Host+d.User, "=") {
		return fmt.Errorf("host %q / user %q: not a host name and user name", d.Host, d.User)
	}
	for _, s := range []string{d.Label(), d.DBName, d.Host, d.User} {
		if strings.ContainsAny(s, "/\x00\n") {
			return fmt.Errorf("%q: contains / or control characters", s)
		}
	}
	return nil
}

// env passes credentials to the client tools through their environment
// (or files), never on a command line that `ps` would show.
//
// The tools get a minimal environment: what they need to run (PATH, HOME
// for ~/.pgpass and ~/.my.cnf, locale, time zone) and their own settings
// (PG*, or MYSQL_*/MARIADB_*), never the rest of backupd's: the repository
// password (BACKUPD_PASSWORD), cloud keys (AWS_*) and other secrets stay
// out of processes that do not need them.
func (d Database) env() []string {
	env := toolEnv(os.Environ(), d.Kind)
	if d.Kind == "postgresql" {
		if d.PassFile != "" {
			env = append(env, "PGPASSFILE="+d.PassFile)
		}
		if d.Password != "" {
			env = append(env, "PGPASSWORD="+d.Password)
		}
		env = append(env, "PGCONNECT_TIMEOUT=10")
	} else if d.Password != "" {
		env = append(env, "MYSQL_PWD="+d.Password)
	}
	return env
}

func toolEnv(all []string, kind string) []string {
	prefixes := []string{"MYSQL_", "MARIADB_"}
	if kind == "postgresql" {
		prefixes = []string{"PG"}
	}
	var out []string
	for _, kv := range all {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR":
			out = append(out, kv)
			continue
		}
		if strings.HasPrefix(name, "LC_") {
			out = append(out, kv)
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

// conn are the connection flags of the database's client tools.
func (d Database) conn() []string {
	var a []string
	if d.Kind == "postgresql" {
		a = append(a, "--no-password")
		if d.Host != "" {
			a = append(a, "--host", d.Host)
		}
		if d.Port != 0 {
			a = append(a, "--port", strconv.Itoa(d.Port))
		}
		if d.User != "" {
			a = append(a, "--username", d.User)
		}
		return a
	}
	if d.PassFile != "" { // must come first
		a = append(a, "--defaults-extra-file="+d.PassFile)
	}
	if d.Host != "" {
		a = append(a, "--host", d.Host)
	}
	if d.Port != 0 {
		a = append(a, "--port", strconv.Itoa(d.Port))
	}
	if d.User != "" {
		a = append(a, "--user", d.User)
	}
	return a
}

// Streams are the dumps a backup of the database takes. pg_dump's custom
// format reads inside one repeatable-read transaction, and mariadb-dump's
// --single-transaction the same: the dump is the database at one instant
// even while it is written to.
func (d Database) Streams() []Stream {
	if d.Kind == "mariadb" {
		return []Stream{{Name: d.DumpFile(), Open: func(ctx context.Context) (io.ReadCloser, error) {
			args := append(d.conn(), "--single-transaction", "--routines", "--triggers", "--events",
				"--hex-blob", "--databases", d.DBName)
			return startReader(ctx, "mariadb-dump", args, d.env())
		}}}
	}
	out := []Stream{{Name: d.DumpFile(), Open: func(ctx context.Context) (io.ReadCloser, error) {
		return startReader(ctx, "pg_dump", append(d.conn(), "--format=custom", "--dbname", d.DBName), d.env())
	}}}
	if d.Globals {
		out = append(out, Stream{Name: d.Label() + ".globals.sql", Optional: true, Open: func(ctx context.Context) (io.ReadCloser, error) {
			return startReader(ctx, "pg_dumpall", append(d.conn(), "--globals-only"), d.env())
		}})
	}
	return out
}

// cmdReader is a program's standard output; Close waits for the program
// and reports its failure with what it said on standard error.
type cmdReader struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *limitedBuffer
	once   sync.Once
	err    error
}

func startReader(ctx context.Context, name string, args, env []string) (io.ReadCloser, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	stderr := &limitedBuffer{max: 4096}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &cmdReader{ReadCloser: out, cmd: cmd, stderr: stderr}, nil
}

func (r *cmdReader) Close() error {
	r.once.Do(func() {
		io.Copy(io.Discard, r.ReadCloser) // let it finish writing
		if err := r.cmd.Wait(); err != nil {
			r.err = fmt.Errorf("%s: %v: %s", r.cmd.Args[0], err, strings.TrimSpace(r.stderr.String()))
		}
	})
	return r.err
}

type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ErrTargetNotEmpty: a restore into a database that has tables, without
// being told to overwrite it.
var ErrTargetNotEmpty = errors.New("the target database is not empty")

// Restore loads a dump (from r) into the database named target (the
// original when empty). The target is created if missing; a target that
// has tables is refused unless overwrite. PostgreSQL restores in a single
// transaction: it lands whole or not at all.
func (d Database) Restore(ctx context.Context, r io.Reader, target string, overwrite bool) error {
	if target == "" {
		target = d.DBName
	}
	// a name the tools cannot mistake for an option or connection string
	// (pg tools read "a=b" as settings, mariadb a leading "-" as a flag)
	if !ValidDBName(target) {
		return fmt.Errorf("target database %q: invalid name (letters, digits, _ and $; at most 63)", target)
	}
	if d.Kind == "mariadb" {
		return d.restoreMariaDB(ctx, r, target, overwrite)
	}
	exists, tables, err := d.pgState(ctx, target)
	if err != nil {
		return err
	}
	if tables > 0 && !overwrite {
		return fmt.Errorf("%s has %d tables: %w (restore with overwrite to replace it)", target, tables, ErrTargetNotEmpty)
	}
	if !exists {
		if err := run(ctx, "createdb", append(d.conn(), target), d.env(), nil); err != nil {
			return err
		}
	}
	args := append(d.conn(), "--dbname", target, "--single-transaction", "--exit-on-error")
	if tables > 0 {
		args = append(args, "--clean", "--if-exists")
	}
	return run(ctx, "pg_restore", args, d.env(), r)
}

// pgState says whether a database exists and how many tables it has
// outside the system schemas.
func (d Database) pgState(ctx context.Context, db string) (bool, int, error) {
	var out bytes.Buffer
	q := "SELECT count(*) FROM pg_database WHERE datname = '" + db + "'"
	if err := runOut(ctx, "psql", append(d.conn(), "--dbname", "postgres", "-Atc", q), d.env(), &out); err != nil {
		return false, 0, err
	}
	if strings.TrimSpace(out.String()) == "0" {
		return false, 0, nil
	}
	out.Reset()
	q = "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
	if err := runOut(ctx, "psql", append(d.conn(), "--dbname", db, "-Atc", q), d.env(), &out); err != nil {
		return true, 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(out.String()))
	return true, n, err
}

func (d Database) restoreMariaDB(ctx context.Context, r io.Reader, target string, overwrite bool) error {
	var out bytes.Buffer
	q := "SELECT count(*) FROM information_schema.tables WHERE table_schema = '" + target + "'"
	if err := runOut(ctx, "mariadb", append(d.conn(), "-N", "-B", "-e", q), d.env(), &out); err != nil {
		return err
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(out.String())); n > 0 && !overwrite {
		return fmt.Errorf("%s has %d tables: %w (restore with overwrite to replace it)", target, n, ErrTargetNotEmpty)
	}
	if err := run(ctx, "mariadb", append(d.conn(), "-e", "CREATE DATABASE IF NOT EXISTS `"+target+"`"), d.env(), nil); err != nil {
		return err
	}
	// the dump names its database (--databases): restore into the target
	// by running it with that database current and the USE/CREATE lines
	// pointing at the target
	// --sandbox: a dump is data; client commands in it (\! runs a shell
	// command, \. reads a file) are refused, so a poisoned dump cannot
	// run anything as the restoring user
	return run(ctx, "mariadb", append(d.conn(), "--sandbox", "--database="+target), d.env(), &renameDB{r: r, from: d.DBName, to: target})
}

// renameDB rewrites the dump's CREATE DATABASE and USE lines for another
// target database.
type renameDB struct {
	r        io.Reader
	from, to string
	buf      bytes.Buffer
	rest     []byte
	eof      bool
}

func (x *renameDB) Read(p []byte) (int, error) {
	for len(x.rest) == 0 {
		if x.eof {
			return 0, io.EOF
		}
		chunk := make([]byte, 64<<10)
		n, err := x.r.Read(chunk)
		x.buf.Write(chunk[:n])
		if err == io.EOF {
			x.eof = true
		} else if err != nil {
			return 0, err
		}
		for {
			line, lerr := x.buf.ReadBytes('\n')
			if lerr != nil { // incomplete line: keep it for the next read
				if x.eof {
					x.rest = append(x.rest, x.fix(line)...)
				} else {
					rem := append([]byte(nil), line...)
					x.buf.Reset()
					x.buf.Write(rem)
				}
				break
			}
			x.rest = append(x.rest, x.fix(line)...)
		}
	}
	n := copy(p, x.rest)
	x.rest = x.rest[n:]
	return n, nil
}

func (x *renameDB) fix(line []byte) []byte {
	if x.from == x.to {
		return line
	}
	s := string(line)
	if strings.HasPrefix(s, "CREATE DATABASE ") || strings.HasPrefix(s, "USE ") {
		s = strings.Replace(s, "`"+x.from+"`", "`"+x.to+"`", 1)
	}
	return []byte(s)
}

func run(ctx context.Context, name string, args, env []string, stdin io.Reader) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Stdin = env, stdin
	stderr := &limitedBuffer{max: 4096}
	cmd.Stderr, cmd.Stdout = stderr, io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func runOut(ctx context.Context, name string, args, env []string, out io.Writer) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Stdout = env, out
	stderr := &limitedBuffer{max: 4096}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Query runs one SQL statement in database db (a drill's check of a
// restored dump) and returns what it printed: rows one per line, columns
// separated by '|' (PostgreSQL) or a tab (MariaDB), no headers.
func (d Database) Query(ctx context.Context, db, query string, max int) (string, error) {
	if !ValidDBName(db) {
		return "", fmt.Errorf("database %q: invalid name (letters, digits, _ and $; at most 63)", db)
	}
	out := &limitedBuffer{max: max} // a query may print a whole table
	var err error
	if d.Kind == "mariadb" {
		err = runOut(ctx, "mariadb", append(d.conn(), "-N", "-B", "--database="+db, "-e", query), d.env(), out)
	} else {
		err = runOut(ctx, "psql", append(d.conn(), "--dbname", db, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", query), d.env(), out)
	}
	return strings.TrimRight(out.String(), "\n"), err
}

// Drop removes database db if it exists (a drill's scratch database).
func (d Database) Drop(ctx context.Context, db string) error {
	if !ValidDBName(db) {
		return fmt.Errorf("database %q: invalid name (letters, digits, _ and $; at most 63)", db)
	}
	if d.Kind == "mariadb" {
		return run(ctx, "mariadb", append(d.conn(), "-e", "DROP DATABASE IF EXISTS `"+db+"`"), d.env(), nil)
	}
	// --force: a session the check's tool left behind (killed at its
	// timeout) must not keep the copy on the server
	return run(ctx, "dropdb", append(d.conn(), "--if-exists", "--force", db), d.env(), nil)
}
