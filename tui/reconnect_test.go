package tui

import (
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rayctl/rayctl/store"
	"github.com/rayctl/rayctl/store/storetest"
)

// proxy forwards TCP connections to a PostgreSQL server and can be cut and restored, to
// stage a database outage between rayctl top and a real server.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
}

// cut closes the listener and every open connection: the database is unreachable.
func (p *proxy) cut() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// restore listens again on the same address.
func (p *proxy) restore() { p.listen(p.addr) }

// TestReconnectsByItself runs the model over the real store and a real server behind a proxy:
// when the proxy is cut, a refresh reports the trouble in the status line and keeps the last
// data; when it is back, the next refresh succeeds without anyone reconnecting by hand.
func TestReconnectsByItself(t *testing.T) {
	s, sc := storetest.New(t)
	ctx := t.Context()
	storetest.Insert(t, s, store.Task{CallablePath: "real.tasks.one"})
	storetest.Insert(t, s, store.Task{CallablePath: "real.tasks.two", State: store.StateFailed, ErrorMessage: storetest.Ptr("boom")})

	u, err := url.Parse(sc.DSN)
	if err != nil || u.Host == "" {
		t.Skipf("needs a TCP DATABASE_URL to put a proxy in front of it: %q", sc.DSN)
	}
	px := startProxy(t, u.Host)
	u.Host = px.addr
	pool, err := store.Open(ctx, u.String(), func(c *pgxpool.Config) {
		c.MaxConns = 2
		c.ConnConfig.ConnectTimeout = 5 * time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	clock := fixedNow
	m := New(Options{Source: store.New(pool), Clock: func() time.Time { return clock }})
	m.tickFn = func(time.Duration, int) tea.Cmd { return nil }
	h := &harness{t: t, m: m}
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.run(h.m.Init())
	h.keys("2")
	if h.m.dbErr != nil || h.m.dash == nil || len(h.m.tasks.rows) != 2 {
		t.Fatalf("first load: err %v, rows %d", h.m.dbErr, len(h.m.tasks.rows))
	}

	px.cut()
	clock = clock.Add(2 * time.Second)
	h.send(tickMsg{gen: h.m.tickGen})
	if h.m.dbErr == nil {
		t.Fatal("a refresh through a cut connection reported no trouble")
	}
	if h.m.dash == nil || len(h.m.tasks.rows) != 2 {
		t.Fatal("the last data was dropped")
	}
	v := h.m.View()
	if !strings.Contains(v, "database: ") || !strings.Contains(v, "data from 15:04:05") || !strings.Contains(v, "real.tasks.two") {
		t.Errorf("view during the outage:\n%s", v)
	}

	px.restore()
	deadline := time.Now().Add(30 * time.Second)
	for h.m.dbErr != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still failing after the database came back: %v", h.m.dbErr)
		}
		time.Sleep(100 * time.Millisecond) // the pool discards the broken connections it meets
		clock = clock.Add(2 * time.Second)
		h.send(tickMsg{gen: h.m.tickGen})
	}
	if !strings.Contains(h.m.View(), "database reachable again") {
		t.Errorf("no recovery message:\n%s", h.m.View())
	}
}
