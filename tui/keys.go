package tui

import "github.com/charmbracelet/bubbles/key"

// KeyMap is every key `rayctl top` answers to, k9s-style where k9s has one. It implements
// help.KeyMap. Under --readonly the write keys stay bound so that pressing one says why
// nothing happens; the help marks them off.
type KeyMap struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding

	Overview, Tasks, Failures, Workers, NextView, PrevView key.Binding
	Open, Back, Quit, Command                              key.Binding

	Filter, Mark, MarkAll, ClearMarks, Window key.Binding
	Requeue, Cancel                           key.Binding

	Refresh, Pause, Faster, Slower key.Binding
	Help                           key.Binding

	// the confirmation dialog
	Confirm, Deny, SwitchButton, ResetAttempts key.Binding
}

// DefaultKeyMap returns the key bindings; readOnly marks the write keys off in the help.
func DefaultKeyMap(readOnly bool) KeyMap {
	off := func(h string) string {
		if readOnly {
			return h + " (off)"
		}
		return h
	}
	return KeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup/ctrl+b", "previous page")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn/ctrl+f", "next page")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/home", "first row")),
		Bottom:   key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G/end", "last row")),

		Overview: key.NewBinding(key.WithKeys("1"), key.WithHelp("1", "overview")),
		Tasks:    key.NewBinding(key.WithKeys("2"), key.WithHelp("2", "tasks")),
		Failures: key.NewBinding(key.WithKeys("3"), key.WithHelp("3", "failures")),
		Workers:  key.NewBinding(key.WithKeys("4"), key.WithHelp("4", "workers")),
		NextView: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next view")),
		PrevView: key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous view")),
		Open:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Quit:     key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "back")),
		Command:  key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "command")),

		Filter:     key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Mark:       key.NewBinding(key.WithKeys(" "), key.WithHelp("space", off("mark"))),
		MarkAll:    key.NewBinding(key.WithKeys("ctrl+a", "A"), key.WithHelp("A", off("mark all matching"))),
		ClearMarks: key.NewBinding(key.WithKeys("ctrl+\\", "u"), key.WithHelp("u/ctrl+\\", "clear marks")),
		Window:     key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "window")),
		Requeue:    key.NewBinding(key.WithKeys("R"), key.WithHelp("R", off("requeue"))),
		Cancel:     key.NewBinding(key.WithKeys("X"), key.WithHelp("X", off("cancel"))),

		Refresh: key.NewBinding(key.WithKeys("r", "ctrl+r"), key.WithHelp("r", "refresh")),
		Pause:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause")),
		Faster:  key.NewBinding(key.WithKeys("+", "="), key.WithHelp("+", "refresh faster")),
		Slower:  key.NewBinding(key.WithKeys("-"), key.WithHelp("-", "refresh slower")),
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),

		Confirm:       key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "confirm")),
		Deny:          key.NewBinding(key.WithKeys("n", "esc", "q"), key.WithHelp("n/esc", "cancel")),
		SwitchButton:  key.NewBinding(key.WithKeys("tab", "left", "right", "h", "l"), key.WithHelp("tab", "switch button")),
		ResetAttempts: key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "reset attempts on/off")),
	}
}

// ShortHelp is the one-line hint under every view.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Help, k.Command, k.Filter, k.Open, k.Back, k.Mark, k.Requeue, k.Cancel, k.Quit}
}

// FullHelp is the `?` screen, one column per group.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom, k.Open, k.Back, k.Quit},
		{k.Overview, k.Tasks, k.Failures, k.Workers, k.NextView, k.PrevView, k.Command, k.Filter, k.Window},
		{k.Mark, k.MarkAll, k.ClearMarks, k.Requeue, k.Cancel, k.Refresh, k.Pause, k.Faster, k.Slower, k.Help},
	}
}

// hints is the key line under a view: the keys that do something there.
func (k KeyMap) hints(v View, detail, top bool) []key.Binding {
	quit := k.Quit
	if top {
		quit = key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit"))
	}
	switch {
	case v == ViewTasks && detail:
		return []key.Binding{k.Help, k.Back, k.Requeue, k.Cancel, quit}
	case v == ViewTasks:
		return []key.Binding{k.Help, k.Filter, k.Mark, k.Requeue, k.Cancel, k.Command, quit}
	case v == ViewFailures:
		return []key.Binding{k.Help, k.Open, k.Window, k.Requeue, k.Command, quit}
	case v == ViewWorkers:
		return []key.Binding{k.Help, k.Open, k.Refresh, k.Command, quit}
	}
	return []key.Binding{k.Help, k.Tasks, k.Failures, k.Workers, k.Command, k.Pause, quit}
}
