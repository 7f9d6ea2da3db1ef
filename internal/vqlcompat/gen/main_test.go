package main

import (
	"bytes"
	"io"
	"log"
	"os"
	"testing"
)

// The committed table must be what the generator makes of the mirrors
// today. Skipped where the mirrors are absent (CI): the table is then
// checked by the tests of internal/vqlcompat alone.
func TestTableUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("reads every release from the git mirrors")
	}
	for _, d := range []string{defaultVR, defaultVF} {
		if _, err := os.Stat(d); err != nil {
			t.Skipf("no mirror at %s", d)
		}
	}
	log.SetOutput(io.Discard)
	defer log.SetOutput(os.Stderr)
	got, err := generate(defaultVR, defaultVF, "0.72", "0.77.2", nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../releases.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("releases.json is stale: run go generate in internal/vqlcompat")
	}
}
