//go:build !lean

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

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
	hosts := make([]string, 0, len(res.Hosts))
	for h := range res.Hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		fmt.Printf("  host %-10s %d manifests (its repositories, hosts/<id>)\n", h, res.Hosts[h])
	}
	if len(res.Recovered) > 0 {
		fmt.Printf("  hosts the catalog did not know, recorded again as revoked: %s\n", strings.Join(res.Recovered, ", "))
		fmt.Println("  (their workers' credentials were in the old catalog: enrol those machines anew, under new names, and restore their backups onto them)")
	}
	for _, u := range res.Unreadable {
		fmt.Println("  unreadable:", u)
	}
	if len(res.Unreadable) > 0 {
		return &exitError{exitPartial, fmt.Errorf("%d manifests could not be read", len(res.Unreadable))}
	}
	return nil
}
