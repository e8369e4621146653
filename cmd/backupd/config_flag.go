package main

import (
	"flag"
	"os"

	"backupd/config"
)

// loadConfig parses fs with a --config flag added and loads that file.
func loadConfig(fs *flag.FlagSet, args []string) (*config.Config, error) {
	path := fs.String("config", os.Getenv("BACKUPD_CONFIG"), "configuration file (env BACKUPD_CONFIG)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return config.Load(*path)
}
