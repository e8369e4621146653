package api

// Browsing a backup's file tree (the console's restore browser, and any
// client that restores a few files): one directory at a time, or a search
// of the names. A path is absolute, as backed up; the same string selects
// the entry in a restore request's paths.

// TreeEntry is one file, directory or other node of a backup's tree.
type TreeEntry struct {
	Component  string `json:"component" required:"true" example:"\"configurations\""`
	Name       string `json:"name" required:"true" example:"\"nginx.conf\""`
	Path       string `json:"path" required:"true" doc:"absolute, as backed up: give it in a restore request's paths" example:"\"/etc/nginx/nginx.conf\""`
	Type       string `json:"type" required:"true" enum:"node_type"`
	Size       int64  `json:"size" required:"true" minimum:"0" doc:"bytes (files)"`
	Mode       string `json:"mode" required:"true" doc:"as ls -l shows it" example:"\"-rw-r--r--\""`
	Modified   string `json:"modified" required:"true" format:"date-time"`
	User       string `json:"user,omitempty"`
	Group      string `json:"group,omitempty"`
	UID        uint32 `json:"uid"`
	GID        uint32 `json:"gid"`
	LinkTarget string `json:"link_target,omitempty" doc:"symbolic links: where the link points"`
}

// TreeListing answers GET /backup/tree/{backup_id}: one directory.
type TreeListing struct {
	BackupID        string      `json:"backup_id" required:"true"`
	Component       string      `json:"component" required:"true"`
	Path            string      `json:"path" required:"true" doc:"the directory listed"`
	StorageLocation string      `json:"storage_location" required:"true" doc:"where the tree was read"`
	Entries         []TreeEntry `json:"entries" required:"true" doc:"sorted by name"`
	Pagination      Pagination  `json:"pagination" required:"true"`
}

// TreeSearch answers GET /backup/search/{backup_id}: the entries whose
// names match, in path order.
type TreeSearch struct {
	BackupID        string      `json:"backup_id" required:"true"`
	Query           string      `json:"query" required:"true"`
	StorageLocation string      `json:"storage_location" required:"true"`
	Matches         []TreeEntry `json:"matches" required:"true"`
	Pagination      Pagination  `json:"pagination" required:"true"`
	Truncated       bool        `json:"truncated" required:"true" doc:"the search stopped at its limit (2,000,000 entries or 20 seconds): total counts only the matches found so far (narrow it with component or path)"`
	Visited         int64       `json:"visited" required:"true" doc:"tree entries the search looked at"`
}

// WhoAmI answers GET /backup/whoami: the caller's token, so a client can
// offer only what its role may do.
type WhoAmI struct {
	TokenID   string  `json:"token_id" required:"true"`
	Name      string  `json:"name" required:"true"`
	Role      string  `json:"role" required:"true" enum:"role"`
	ExpiresAt *string `json:"expires_at" required:"true" nullable:"true" format:"date-time" doc:"null: never expires"`
}
