package rayjobs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TokenFromEnv finds the Ray auth token the way Ray's own tools do, through the given getenv
// (os.Getenv in cmd/; a map in tests): RAY_AUTH_TOKEN, else the file named by
// RAY_AUTH_TOKEN_PATH, else $HOME/.ray/auth_token if it exists. It returns "" with no error
// when none is configured (auth disabled). Surrounding whitespace is stripped.
func TokenFromEnv(getenv func(string) string) (string, error) {
	if t := strings.TrimSpace(getenv("RAY_AUTH_TOKEN")); t != "" {
		return t, nil
	}
	if p := strings.TrimSpace(getenv("RAY_AUTH_TOKEN_PATH")); p != "" {
		return TokenFromFile(p)
	}
	if home := getenv("HOME"); home != "" {
		p := filepath.Join(home, ".ray", "auth_token")
		if _, err := os.Stat(p); err == nil {
			return TokenFromFile(p)
		}
	}
	return "", nil
}

// TokenFromFile reads a token file (whitespace stripped). An empty file is an error: a
// configured token file that holds nothing is a mistake, not "auth disabled".
func TokenFromFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("rayjobs: auth token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("rayjobs: auth token file %s is empty", path)
	}
	if strings.ContainsAny(t, " \t\r\n") {
		return "", errors.New("rayjobs: auth token file " + path + " holds more than one word")
	}
	return t, nil
}
