//go:build !lean

package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.temporal.io/sdk/log"

	"backupd/config"
)

// logFlags are --log-level and --log-format; they override the
// configuration (log.level, log.format) and its BACKUPD_LOG_* variables.
type logFlags struct{ level, format string }

func addLogFlags(fs *flag.FlagSet) *logFlags {
	f := &logFlags{}
	fs.StringVar(&f.level, "log-level", "", "debug, info, warn or error (env BACKUPD_LOG_LEVEL; default info)")
	fs.StringVar(&f.format, "log-format", "", "text or json (env BACKUPD_LOG_FORMAT; default text)")
	return f
}

// apply puts the flags into cfg and checks the result.
func (f *logFlags) apply(cfg *config.Config) error {
	if f.level != "" {
		cfg.Log.Level = f.level
	}
	if f.format != "" {
		cfg.Log.Format = f.format
	}
	return cfg.Validate()
}

// check refuses values no configuration could take, before anything
// starts.
func (f *logFlags) check() error {
	c := config.Config{Log: config.Log{Level: f.level, Format: f.format}}
	return c.ValidateLog()
}

// logLevel is cfg's level (info when unset; Validate refused the rest).
func logLevel(cfg *config.Config) slog.Level {
	switch strings.ToLower(cfg.Log.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// newLogger is the process's logger, as cfg says, writing to w.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	// its last records stay in memory too, for the debug bundle
	return slog.New(recentLogs.Handler(logHandler(cfg, w, logLevel(cfg))))
}

func logHandler(cfg *config.Config, w io.Writer, level slog.Level) slog.Handler {
	o := &slog.HandlerOptions{Level: level}
	if strings.ToLower(cfg.Log.Format) == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}

// sdkLogger is the Temporal SDK's logger: the same format, its routine
// INFO lines only at debug, and a job's failure on a user's mistake (an
// unknown component, a target that is not empty) a warning, not an error
// — the job's own record and the API say what went wrong.
func sdkLogger(cfg *config.Config) log.Logger {
	level := logLevel(cfg)
	if level == slog.LevelInfo {
		level = slog.LevelWarn
	}
	// what it writes is kept for the debug bundle too
	return log.NewStructuredLogger(slog.New(userMistakes{recentLogs.HandlerAt(logHandler(cfg, os.Stderr, level), level)}))
}

// userMistakeCodes are the codes of failures a request caused, not the
// system: invalid configuration, backup not found, restore conflict.
var userMistakeCodes = []string{"BACKUP_003", "BACKUP_007", "BACKUP_008"}

// userMistakes lowers the SDK's "Activity error." records for them.
type userMistakes struct{ slog.Handler }

func (h userMistakes) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && strings.HasPrefix(r.Message, "Activity error") {
		mistake := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "Error" {
				for _, c := range userMistakeCodes {
					if strings.Contains(a.Value.String(), "(type: "+c+",") {
						mistake = true
					}
				}
			}
			return !mistake
		})
		if mistake {
			r2 := slog.NewRecord(r.Time, slog.LevelWarn, r.Message, r.PC)
			r.Attrs(func(a slog.Attr) bool { r2.AddAttrs(a); return true })
			if !h.Handler.Enabled(ctx, slog.LevelWarn) {
				return nil
			}
			return h.Handler.Handle(ctx, r2)
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h userMistakes) WithAttrs(as []slog.Attr) slog.Handler {
	return userMistakes{h.Handler.WithAttrs(as)}
}
func (h userMistakes) WithGroup(n string) slog.Handler { return userMistakes{h.Handler.WithGroup(n)} }
