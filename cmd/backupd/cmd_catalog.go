//go:build !lean

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"backupd/activities"
	"backupd/models"
)

// cmdCatalog: `backupd catalog rebuild` recreates the catalog's backups
// from the manifests in every configured location (disaster recovery: the
// catalog lost, the storage and the key kept).
func cmdCatalog(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprintln(os.Stderr, "usage: backupd catalog rebuild [--config FILE] [--json]")
		return errUsage
	}
	fs := flag.NewFlagSet("backupd catalog rebuild", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cfg, err := loadConfig(fs, args[1:])
	if err != nil {
		return err
	}
	store, err := models.Open(cfg.Catalog.Driver, cfg.Catalog.DSN)
	if err != nil {
		return err
	}
	defer store.Close()
	stores := activities.NewStores(cfg)
	defer stores.Close()
	res, err := activities.RebuildCatalog(ctx, store, stores, cfg.LocationNames())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("catalog rebuilt from storage: %d backups (%d added, %d updated)\n", res.Backups, res.Added, res.Updated)
	for _, loc := range cfg.LocationNames() {
		fmt.Printf("  %-10s %d manifests\n", loc, res.Locations[loc])
	}
	for _, u := range res.Unreadable {
		fmt.Println("  unreadable:", u)
	}
	if len(res.Unreadable) > 0 {
		return &exitError{exitPartial, fmt.Errorf("%d manifests could not be read", len(res.Unreadable))}
	}
	return nil
}
