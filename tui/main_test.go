package tui

import (
	"os"
	"testing"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// goldens hold plain text: pin the colour profile so the test host's terminal cannot leak in
	lipgloss.SetColorProfile(termenv.Ascii)
	code := m.Run()
	if code == 0 {
		if err := findLeaks(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// findLeaks fails on goroutines left behind. A refresh tick (at most DefaultRefresh away)
// scheduled just before a test program quit still has to fire into the finished program, so
// it looks again until a deadline before reporting.
func findLeaks() error {
	ignore := []goleak.Option{
		// teatest's SIGINT watcher lives as long as the test binary
		goleak.IgnoreTopFunction("github.com/charmbracelet/x/exp/teatest.NewTestModel.func2"),
		// so does storetest's shared admin pool (it creates and drops the test schemas)
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
	}
	deadline := time.Now().Add(2*DefaultRefresh + 3*time.Second)
	for {
		err := goleak.Find(ignore...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lipglossWidth(s string) int { return ansi.StringWidth(s) }
