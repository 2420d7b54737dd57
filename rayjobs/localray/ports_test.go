package localray

import "testing"

// TestFreePortsAvoids: no port Ray gets may fall in the worker range (Ray then refuses to
// start: "the same port is used by multiple components"), and none may repeat.
func TestFreePortsAvoids(t *testing.T) {
	t.Parallel()
	avoid := func(p int) bool { return p%2 == 0 } // stands in for the worker range
	ports, err := freePorts(8, avoid)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if avoid(p) || seen[p] {
			t.Fatalf("ports %v: %d is avoided or repeated", ports, p)
		}
		seen[p] = true
	}
	if len(ports) != 8 {
		t.Fatalf("got %d ports", len(ports))
	}
	if _, err := freePorts(2, func(int) bool { return true }); err == nil {
		t.Fatal("no error when every port is avoided")
	}
}
