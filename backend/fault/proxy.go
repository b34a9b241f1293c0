package fault

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a network store (an S3
// server), for partitions a store cannot fake from inside the process:
// Cut closes every connection and refuses new ones, Stall closes every
// connection and holds new ones open without forwarding a byte, Heal
// restores service.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	state   proxyState
	conns   map[net.Conn]struct{} // both sides of forwarded connections
	held    map[net.Conn]struct{} // stalled client connections
	closed  bool
	accepts int
}

type proxyState int

const (
	proxyUp proxyState = iota
	proxyCut
	proxyStalled
)

// NewProxy listens on a free 127.0.0.1 port and forwards every connection
// to target ("host:port").
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	p := &Proxy{
		target: target,
		ln:     ln,
		conns:  map[net.Conn]struct{}{},
		held:   map[net.Conn]struct{}{},
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted is the number of client connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// Cut closes every open connection and refuses new ones until Heal.
func (p *Proxy) Cut() { p.setState(proxyCut) }

// Stall closes every open connection and holds new ones open, silent,
// until Heal (which closes them) or Close.
func (p *Proxy) Stall() { p.setState(proxyStalled) }

// Heal forwards new connections again.
func (p *Proxy) Heal() { p.setState(proxyUp) }

func (p *Proxy) setState(s proxyState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = s
	if s == proxyUp {
		p.dropLocked(p.held)
		return
	}
	p.dropLocked(p.conns)
}

func (p *Proxy) dropLocked(m map[net.Conn]struct{}) {
	for c := range m {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, like a dropped route would look to the peer
		}
		_ = c.Close()
		delete(m, c)
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.dropLocked(p.conns)
	p.dropLocked(p.held)
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		p.accepts++
		switch {
		case p.closed || p.state == proxyCut:
			p.mu.Unlock()
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		case p.state == proxyStalled:
			p.held[c] = struct{}{}
			p.mu.Unlock()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.forward(c)
	}
}

// forward pipes c to a new connection to the target until either side
// closes.
func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.forget(c)
		return
	}
	p.mu.Lock()
	if p.closed || p.state != proxyUp {
		p.mu.Unlock()
		_ = up.Close()
		p.forget(c)
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	p.forget(c)
	p.forget(up)
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}
