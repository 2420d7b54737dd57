package rayjobs_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rayctl/rayctl/rayjobs"
)

// TestTokenEchoedBackIsRedacted: a server (or a proxy in front of Ray) that echoes the
// Authorization header in what it answers never gets the token into an error's text, on any
// path: an error status's body, a 2xx body that is not JSON, a redirect's Location, a log
// stream that breaks.
func TestTokenEchoedBackIsRedacted(t *testing.T) {
	const token = "s3cr3t-T0k3n/with+chars"
	echo := func(r *http.Request) string {
		return "got Authorization: " + r.Header.Get("Authorization") + " token=" + url.QueryEscape(token)
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		call    func(c *rayjobs.Client) error
		kind    error
	}{
		{"401 body", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, echo(r), http.StatusUnauthorized)
		}, func(c *rayjobs.Client) error { _, err := c.Version(t.Context()); return err }, rayjobs.ErrUnauthorized},
		{"500 traceback", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad header "+echo(r), http.StatusInternalServerError)
		}, func(c *rayjobs.Client) error { _, err := c.Get(t.Context(), "raysubmit_1"); return err }, rayjobs.ErrUnavailable},
		{"200 not JSON", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "<html>login page for "+echo(r)+"</html>")
		}, func(c *rayjobs.Client) error { _, err := c.Get(t.Context(), "raysubmit_1"); return err }, rayjobs.ErrBadResponse},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://sso.example/login?token="+url.QueryEscape(token), http.StatusFound)
		}, func(c *rayjobs.Client) error { _, err := c.List(t.Context()); return err }, rayjobs.ErrBadResponse},
		{"400 on submit", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, echo(r), http.StatusBadRequest)
		}, func(c *rayjobs.Client) error {
			_, err := c.Submit(t.Context(), rayjobs.SubmitRequest{Entrypoint: "true", SubmissionID: "raysubmit_2"})
			return err
		}, rayjobs.ErrRejected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			c := newClient(t, srv.URL, func(o *rayjobs.Options) { o.Token = token })
			err := tc.call(c)
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); strings.Contains(msg, token) || strings.Contains(msg, url.QueryEscape(token)) {
				t.Fatalf("the token is in the error: %s", msg)
			}
			if !strings.Contains(err.Error(), "xxxxx") {
				t.Fatalf("the echoed token is not marked as redacted: %s", err)
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v is not %v", err, tc.kind)
			}
		})
	}
}
