package workflows

import "go.temporal.io/sdk/temporal"

// Search attributes that make jobs listable by type, status, backup id
// and schedule, in the API and in the Temporal Web UI. They are registered
// with the server from temporal-config/search-attributes.txt.
var (
	AttrJobType    = temporal.NewSearchAttributeKeyKeyword("BackupJobType") // backup | restore | verify | cleanup
	AttrStatus     = temporal.NewSearchAttributeKeyKeyword("BackupStatus")
	AttrBackupID   = temporal.NewSearchAttributeKeyKeyword("BackupId")
	AttrJobID      = temporal.NewSearchAttributeKeyKeyword("BackupJobId")
	AttrScheduleID = temporal.NewSearchAttributeKeyKeyword("BackupScheduleId")
	AttrComponents = temporal.NewSearchAttributeKeyKeywordList("BackupComponents")
)
