// Command apidoc writes the human-readable API reference (docs/api.md)
// from the OpenAPI document the server serves: go generate ./apiserver.
package main

import (
	"flag"
	"fmt"
	"os"

	"backupd/apiserver"
)

func main() {
	out := flag.String("o", "docs/api.md", "the file to write")
	flag.Parse()
	if err := os.WriteFile(*out, []byte(apiserver.Reference(apiserver.Document())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "apidoc:", err)
		os.Exit(1)
	}
}
