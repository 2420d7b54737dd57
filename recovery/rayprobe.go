package recovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/rayctl/rayctl/rayjobs"
)

// RayVersioner is what the doctor's Ray probe needs of the Ray Jobs API; *rayjobs.Client
// implements it.
type RayVersioner interface {
	Version(ctx context.Context) (rayjobs.VersionInfo, error)
	Health(ctx context.Context) error
}

// JobsProber is the RayProber over the Ray Jobs API: GET /api/version (reachable, Ray's
// version, and the token checked, since the version needs it when auth is on), then the GCS
// health check, then — when a token is configured — the version again without it, to tell
// whether Ray requires the token or merely receives it.
type JobsProber struct {
	Address string
	Client  RayVersioner // with the configured token, if any
	// Anonymous is the same API without a token (nil: not asked). Only used when
	// TokenSource is set.
	Anonymous RayVersioner
	// TokenSource says where the token came from ("$RAY_AUTH_TOKEN", "--ray-token-file
	// /path"); empty when no token is configured.
	TokenSource string
}

// Auth modes JobsProber reports.
const (
	AuthNone          = "none (Ray asks for no token)"
	AuthTokenRequired = "token (required by Ray, accepted)"
	AuthTokenUnneeded = "token sent, but Ray does not require one"
	AuthTokenSent     = "token sent (accepted)"
)

// ProbeRay implements RayProber. Its error is one line that says what failed.
func (p JobsProber) ProbeRay(ctx context.Context) (RayInfo, error) {
	info := RayInfo{Address: p.Address}
	v, err := p.Client.Version(ctx)
	switch {
	case err == nil:
	case errors.Is(err, rayjobs.ErrUnauthorized) && p.TokenSource == "":
		return info, fmt.Errorf("Ray requires a token and none is configured (set RAY_AUTH_TOKEN or --ray-token-file): %v", err)
	case errors.Is(err, rayjobs.ErrUnauthorized):
		return info, fmt.Errorf("Ray refused the token from %s: %v", p.TokenSource, err)
	default:
		return info, err
	}
	info.Version = v.RayVersion
	if info.Version == "" {
		info.Version = "(version not reported)"
	}
	if err := p.Client.Health(ctx); err != nil {
		return info, fmt.Errorf("the dashboard answers (Ray %s) but its GCS health check fails: %v", info.Version, err)
	}
	switch {
	case p.TokenSource == "":
		info.AuthMode = AuthNone
	case p.Anonymous == nil:
		info.AuthMode = AuthTokenSent
	default:
		_, aerr := p.Anonymous.Version(ctx)
		switch {
		case aerr == nil:
			info.AuthMode = AuthTokenUnneeded
		case errors.Is(aerr, rayjobs.ErrUnauthorized):
			info.AuthMode = AuthTokenRequired
		default:
			info.AuthMode = AuthTokenSent
		}
	}
	if p.TokenSource != "" {
		info.AuthMode += ", from " + p.TokenSource
	}
	return info, nil
}
