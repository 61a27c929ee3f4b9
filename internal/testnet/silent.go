// Package testnet holds the network peers the tests start that misbehave: a server that accepts
// connections and never answers, as a stalled Prometheus, registry or store does.
package testnet

import (
	"net"
	"sync"
)

// T is what SilentListener needs of a test: testing.TB, GinkgoT() and the bench's run have it.
type T interface {
	Helper()
	Cleanup(func())
	Fatal(args ...any)
}

// SilentListener listens on loopback, accepts every connection and never writes to it, until the
// test ends; it returns the address, HOST:PORT.
func SilentListener(t T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}
