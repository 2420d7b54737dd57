package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rayctl/rayctl/internal/settings"
	"github.com/rayctl/rayctl/lifecycle"
	"github.com/rayctl/rayctl/rayjobs"
	"github.com/rayctl/rayctl/recovery"
)

const rayConnHelp = `RAY:
   --ray-address (default $RAY_ADDRESS) is the Ray dashboard's Jobs API, http(s)://HOST:8265.
   The auth token (Ray >= 2.52 with token auth) comes from --ray-token-file (alias
   --ray-auth-token-file, rayworker's name), else $RAY_AUTH_TOKEN, else the file named by
   $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token; a token value is never accepted on the
   command line (shell history, ps). --ray-ca-file (default $DJANGO_RAY_RAY_CA_FILE, as
   rayworker) trusts a private CA for an https address (a TLS proxy in front of the dashboard).`

// rayFlags are the flags of every command that talks to Ray.
func rayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ray-address", Usage: "Ray dashboard / Jobs API address, http(s)://HOST:8265 (default: $RAY_ADDRESS)"},
		&cli.StringFlag{Name: "ray-token-file", Aliases: []string{"ray-auth-token-file"}, Usage: "file holding the Ray auth token (default: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)"},
		&cli.StringFlag{Name: "ray-ca-file", Usage: "PEM file of the CA to trust for an https Ray address (default: $" + settings.RayCAFile.Env + ")"},
		&cli.StringFlag{Name: "ray-token", Hidden: true}, // refused with an explanation
	}
}

// rayConn is a Ray Jobs client built from the Ray flags.
type rayConn struct {
	client      *rayjobs.Client
	anon        *rayjobs.Client // the same address without a token, when a token is configured
	address     string          // normalised
	tokenSource string          // where the token came from; "" for none
}

func (r *rayConn) close() {
	if r == nil {
		return
	}
	r.client.Close()
	if r.anon != nil {
		r.anon.Close()
	}
}

// rayAddress is --ray-address, else $RAY_ADDRESS ("" when neither is set).
func (e env) rayAddress(c *cli.Context) string {
	if a := strings.TrimSpace(c.String("ray-address")); a != "" {
		return a
	}
	return strings.TrimSpace(e.getenv(settings.RayAddress.Env))
}

// rayClient builds the Ray client from the Ray flags; every problem is a one-line usage error
// for cmd. It returns nil, nil when no address is given.
func (e env) rayClient(c *cli.Context, cmd string) (*rayConn, error) {
	if c.IsSet("ray-token") {
		return nil, usageErrorf("%s: --ray-token is not accepted: a token on the command line leaks into shell history and process lists; set RAY_AUTH_TOKEN or use --ray-token-file", cmd)
	}
	addr := e.rayAddress(c)
	if addr == "" {
		return nil, nil
	}
	if strings.EqualFold(addr, "auto") {
		return nil, usageErrorf("%s: Ray address %q names no Jobs API: give --ray-address http://HOST:8265 (the dashboard)", cmd, addr)
	}
	var token, source string
	var err error
	if f := c.String("ray-token-file"); f != "" {
		token, err = rayjobs.TokenFromFile(f)
		source = "--ray-token-file " + f
	} else {
		token, err = rayjobs.TokenFromEnv(e.getenv)
		switch {
		case strings.TrimSpace(e.getenv("RAY_AUTH_TOKEN")) != "":
			source = "$RAY_AUTH_TOKEN"
		case strings.TrimSpace(e.getenv("RAY_AUTH_TOKEN_PATH")) != "":
			source = "$RAY_AUTH_TOKEN_PATH"
		default:
			source = "~/.ray/auth_token"
		}
	}
	if err != nil {
		return nil, usageErrorf("%s: %v", cmd, err)
	}
	if token == "" {
		source = ""
	}
	caFile := strings.TrimSpace(c.String("ray-ca-file"))
	if caFile == "" {
		caFile = strings.TrimSpace(e.getenv(settings.RayCAFile.Env))
	}
	opts := rayjobs.Options{Address: addr, Token: token, CAFile: caFile, UserAgent: "rayctl/" + build.Version}
	cl, err := rayjobs.New(opts)
	if err != nil {
		return nil, usageErrorf("%s: %v", cmd, err)
	}
	rc := &rayConn{client: cl, address: cl.Address(), tokenSource: source}
	if token != "" {
		opts.Token = ""
		if rc.anon, err = rayjobs.New(opts); err != nil {
			cl.Close()
			return nil, usageErrorf("%s: %v", cmd, err)
		}
	}
	return rc, nil
}

// policyFlags are the workers' settings reconcile-jobs needs to record outcomes as they
// would (settings.Policy); each falls back to rayworker's environment variable, then the
// default.
func policyFlags() []cli.Flag { return settingFlags(settings.Policy) }

// policy resolves the workers' retry policy and result settings from flags and environment.
func (e env) policy(c *cli.Context, cmd string) (lifecycle.Policy, lifecycle.Results, error) {
	integer := func(s settings.Int) (int64, error) {
		v, src := e.setting(c, s.Name, s.Env, strconv.FormatInt(s.Default, 10))
		n, err := s.Parse(v)
		if err != nil {
			return 0, usageErrorf("%s: invalid --%s %q%s: %v", cmd, s.Name, v, fromEnv(src), err)
		}
		return n, nil
	}
	var p lifecycle.Policy
	var r lifecycle.Results
	n, err := integer(settings.MaxTaskAttempts)
	if err != nil {
		return p, r, err
	}
	p.MaxAttempts = int(n)
	if n, err = integer(settings.RetryBackoffSeconds); err != nil {
		return p, r, err
	}
	p.Backoff = time.Duration(n) * time.Second
	deny, _ := e.setting(c, settings.RetryExceptionDenylist.Name, settings.RetryExceptionDenylist.Env, "")
	for _, t := range strings.Split(deny, ",") {
		if t = strings.TrimSpace(t); t != "" {
			p.Denylist = append(p.Denylist, t)
		}
	}
	if n, err = integer(settings.MaxResultSizeBytes); err != nil {
		return p, r, err
	}
	r.MaxInline = n
	r.Backend, err = e.resultBackend(c, cmd)
	return p, r, err
}

// rayDown is the one-line error for a Ray that cannot be asked.
func rayDown(cmd string, err error) error {
	return &exitError{code: exitFailed, msg: cmd + ": " + err.Error() + "; nothing changed"}
}

var _ recovery.RayJobs = (*rayjobs.Client)(nil)
