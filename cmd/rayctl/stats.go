package main

import (
	"fmt"
	"math"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/store"
)

func (e env) statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "counts per state, depth per queue, oldest queued age, completions per minute, lease health",
		Flags: []cli.Flag{
			leaseTTLFlag("a lease without a heartbeat for this long is stale"),
		},
		Action: func(c *cli.Context) error {
			ttl := c.Duration("lease-ttl")
			if ttl <= 0 {
				return usageErrorf("stats: invalid --lease-ttl %s (want more than 0)", ttl)
			}
			return e.withDB(c, func(r *runCtx) error { return stats(r, ttl) })
		},
	}
}

func stats(r *runCtx, leaseTTL time.Duration) error {
	st, err := r.store.Stats(r.ctx, leaseTTL)
	if err != nil {
		return err
	}
	if r.o.json() {
		return writeJSON(r.stdout, r.o, st)
	}
	tw := table(r.stdout)
	fmt.Fprintln(tw, "STATE\tTASKS")
	for _, s := range store.AllStates {
		fmt.Fprintf(tw, "%s\t%d\n", s, st.States[s])
	}
	fmt.Fprintf(tw, "total\t%d\n", st.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(r.stdout)
	tw = table(r.stdout)
	fmt.Fprintln(tw, "QUEUE\tQUEUED\tDEFERRED\tRUNNING\tFAILED\tLOST\tOLDEST QUEUED\tOK/MIN\tFAILED/MIN")
	for _, q := range st.Queues {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\n", q.Name, q.Depth, q.Deferred, q.States[store.StateRunning],
			q.States[store.StateFailed], q.States[store.StateLost], age(q.OldestQueued, q.OldestQueuedAt != nil), q.Completed1m, q.Failed1m)
	}
	if len(st.Queues) == 0 {
		fmt.Fprintln(tw, "(no tasks)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(r.stdout, "\nlast minute: %d succeeded, %d failed or lost; oldest queued: %s\n",
		st.Completed1m, st.Failed1m, age(st.OldestQueued, st.OldestQueuedAt != nil))
	fmt.Fprintf(r.stdout, "leases: %d live, %d stale, %d inactive\n", st.Leases.Live, st.Leases.Stale, st.Leases.Inactive)
	return nil
}

// age formats seconds compactly: 45s, 12m3s, 5h2m, 3d4h.
// maxAgeSeconds is the largest age shown as a duration (about 290 years, time.Duration's range).
const maxAgeSeconds = float64(math.MaxInt64/int64(time.Second)) - 1

func age(seconds float64, ok bool) string {
	if !ok {
		return "-"
	}
	switch { // measured from or to an infinite timestamp (a poison row): beyond any Duration
	case seconds >= maxAgeSeconds:
		return "∞"
	case seconds <= -maxAgeSeconds:
		return "-∞"
	}
	d := time.Duration(seconds * float64(time.Second)).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
