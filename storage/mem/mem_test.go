package mem

import (
	"testing"

	"backupd/storage"
	"backupd/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return New() })
}
