package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Capture is tcpdump on the LAN's switch (the bridge in the client
// namespace), where every packet between the nodes passes: what anyone on
// the site's network could record.
type Capture struct {
	Path string
	cmd  *exec.Cmd
	done chan error
	stop sync.Once
}

// PairLinkFilter is the traffic between the nodes that carries the
// datastore and the agents' messages: PostgreSQL (Kine, replication,
// pg_rewind, the agents' probes) and the peer API.
const PairLinkFilter = "tcp port 5432 or tcp port 8760"

// StartCapture records the bridge's packets matching filter, whole, into
// path, and returns once tcpdump listens.
func (n *Network) StartCapture(path, filter string) (*Capture, error) {
	// -U: each packet written at once (the file is read right after stop);
	// -s 0: whole packets; -n: no name lookups.
	cmd := exec.Command("ip", "netns", "exec", n.NS("c"), "tcpdump", "-i", "br0", "-n", "-U", "-s", "0", "-w", path, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tcpdump: %w (is it installed? scripts/deps.sh installs it)", err)
	}
	c := &Capture{Path: path, cmd: cmd, done: make(chan error, 1)}
	listening := make(chan struct{})
	var head strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if head.Len() < 4096 {
				head.WriteString(sc.Text() + "\n")
			}
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
				_, _ = io.Copy(io.Discard, stderr)
				break
			}
		}
		c.done <- cmd.Wait()
	}()
	select {
	case <-listening:
		return c, nil
	case err := <-c.done:
		return nil, fmt.Errorf("tcpdump exited before it listened: %v: %s", err, head.String())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("tcpdump did not listen within 10 s: %s", head.String())
	}
}

// Stop ends the capture and waits until the file is complete; a second
// Stop returns at once.
func (c *Capture) Stop() {
	c.stop.Do(func() {
		_ = c.cmd.Process.Signal(os.Interrupt)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// Packets counts the captured packets that match filter (tcpdump -r): that
// the capture saw the traffic it is meant to judge.
func (c *Capture) Packets(filter string) (int, error) {
	out, err := exec.Command("tcpdump", "-r", c.Path, "-n", "-q", filter).Output()
	if err != nil {
		return 0, fmt.Errorf("tcpdump -r %s: %w", c.Path, err)
	}
	return bytes.Count(out, []byte("\n")), nil
}

// Encodings are the forms in which a value could cross the wire in clear:
// as its bytes (the WAL, Kine's binary parameters), in hex (PostgreSQL's
// text form of bytea) and in base64 (a Secret's data in JSON).
func Encodings(v string) []string {
	return []string{v, hex.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte(v))}
}

// Find returns which of needles occur in the capture file's bytes.
func (c *Capture) Find(needles ...string) ([]string, error) {
	b, err := os.ReadFile(c.Path)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, s := range needles {
		if bytes.Contains(b, []byte(s)) {
			found = append(found, s)
		}
	}
	return found, nil
}

// SendInClear sends payload as one UDP datagram from the client namespace
// to addr: the capture's positive control (a filter such as PairLinkFilter
// + " or udp port 9" records it), showing that Find would see a value
// that crossed in clear.
func (n *Network) SendInClear(ctx context.Context, addr, payload string) error {
	var conn net.Conn
	err := InNetns(n.NS("c"), func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, "udp", net.JoinHostPort(addr, "9"))
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(payload))
	return err
}
