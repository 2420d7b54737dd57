package termquery

import (
	"bytes"
	"os"
	"testing"
)

// TestRestore: the init holds TERM at "dumb" (so nothing initialized after it queries the
// terminal) and Restore gives back the value the process started with.
func TestRestore(t *testing.T) {
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Skip("no /proc/self/environ here")
	}
	want, had := "", false
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("TERM=")); ok {
			want, had = string(v), true
		}
	}
	if held && os.Getenv("TERM") != "dumb" {
		t.Fatalf("TERM during startup = %q, want dumb", os.Getenv("TERM"))
	}
	Restore()
	got, ok := os.LookupEnv("TERM")
	if ok != had || got != want {
		t.Fatalf("TERM after Restore = %q (set %v), want %q (set %v)", got, ok, want, had)
	}
	Restore() // a second call changes nothing
	if got2, _ := os.LookupEnv("TERM"); got2 != got {
		t.Fatalf("second Restore changed TERM to %q", got2)
	}
}
