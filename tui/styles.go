package tui

import "github.com/charmbracelet/lipgloss"

// Styles is every style the views use. Without colour (NO_COLOR, --no-color) it keeps only
// bold, reverse and underline; every view also marks the cursor (">"), marks ("*"), the active
// tab ("[ ]") and alerts ("!!") in plain text, so nothing depends on colour or attributes.
type Styles struct {
	Header, Tab, ActiveTab, Dim, Bold lipgloss.Style
	Banner, Calm                      lipgloss.Style
	TableHeader, Cursor, Marked       lipgloss.Style
	Good, Warn, Bad                   lipgloss.Style
	Status, StatusError               lipgloss.Style
	Dialog, Button, ActiveButton      lipgloss.Style
	Spark                             lipgloss.Style
}

// NewStyles returns the styles, with or without colour.
func NewStyles(color bool) Styles {
	s := Styles{
		Header:       lipgloss.NewStyle().Bold(true),
		Tab:          lipgloss.NewStyle(),
		ActiveTab:    lipgloss.NewStyle().Bold(true).Reverse(true),
		Dim:          lipgloss.NewStyle(),
		Bold:         lipgloss.NewStyle().Bold(true),
		Banner:       lipgloss.NewStyle().Bold(true).Reverse(true),
		Calm:         lipgloss.NewStyle(),
		TableHeader:  lipgloss.NewStyle().Bold(true).Underline(true),
		Cursor:       lipgloss.NewStyle().Reverse(true),
		Marked:       lipgloss.NewStyle().Bold(true),
		Good:         lipgloss.NewStyle(),
		Warn:         lipgloss.NewStyle().Bold(true),
		Bad:          lipgloss.NewStyle().Bold(true),
		Status:       lipgloss.NewStyle(),
		StatusError:  lipgloss.NewStyle().Bold(true).Reverse(true),
		Dialog:       lipgloss.NewStyle().Border(lipgloss.NormalBorder()).Padding(0, 1),
		Button:       lipgloss.NewStyle(),
		ActiveButton: lipgloss.NewStyle().Reverse(true).Bold(true),
		Spark:        lipgloss.NewStyle(),
	}
	if !color {
		return s
	}
	red, yellow, green, grey, blue := lipgloss.Color("9"), lipgloss.Color("11"), lipgloss.Color("10"), lipgloss.Color("244"), lipgloss.Color("12")
	s.Header = s.Header.Foreground(blue)
	s.ActiveTab = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("0")).Background(blue)
	s.Dim = s.Dim.Foreground(grey)
	s.Banner = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("1"))
	s.Calm = s.Calm.Foreground(green)
	s.Cursor = lipgloss.NewStyle().Foreground(lipgloss.Color("0")).Background(lipgloss.Color("14"))
	s.Marked = s.Marked.Foreground(yellow)
	s.Good = s.Good.Foreground(green)
	s.Warn = s.Warn.Foreground(yellow)
	s.Bad = s.Bad.Foreground(red)
	s.StatusError = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("1"))
	s.Dialog = s.Dialog.BorderForeground(yellow)
	s.ActiveButton = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("0")).Background(yellow)
	s.Spark = s.Spark.Foreground(green)
	return s
}
