package apiserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/twonode-edge/twonode/e2e/harness"
)

// The two components k3s runs beside its API server. Each elects a leader
// through a Lease in kube-system of the same name; a leader that cannot
// renew it for RenewDeadline gives up and exits, and k3s with it.
const (
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
)

// Upstream's leader election defaults, which k3s keeps; spelled out so
// that the figures the matrix reports can be read against them.
const (
	LeaseDuration = "15s"
	RenewDeadline = "10s"
	RetryPeriod   = "2s" // a healthy leader renews this often
)

// Component is kube-controller-manager or kube-scheduler on a node, as k3s
// runs it: against the node's own API server (a kubeconfig with the
// admin token, mode 0600), with leader election on, and no serving port
// of its own (nothing scrapes it here).
type Component struct {
	Name    string // ControllerManager or Scheduler
	LogPath string
	spec    harness.Spec
	proc    *harness.Proc
}

// StartComponent starts name (bin is the binary under that name, see
// ComponentBinary) against s, in s's namespace; its files go to s's
// directory.
func StartComponent(name, bin string, s *Server) (*Component, error) {
	if name != ControllerManager && name != Scheduler {
		return nil, fmt.Errorf("apiserver: no component %q", name)
	}
	kubeconfig := filepath.Join(s.Opts.Dir, name+".kubeconfig")
	if err := os.WriteFile(kubeconfig, s.kubeconfig(), 0o600); err != nil {
		return nil, err
	}
	c := &Component{Name: name, LogPath: filepath.Join(s.Opts.Dir, name+".log")}
	c.spec = harness.Spec{
		NS: s.Opts.NS, Name: name, LogPath: c.LogPath, Dir: s.Opts.Dir,
		Argv: []string{bin,
			"--kubeconfig=" + kubeconfig,
			"--leader-elect=true",
			"--leader-elect-lease-duration=" + LeaseDuration,
			"--leader-elect-renew-deadline=" + RenewDeadline,
			"--leader-elect-retry-period=" + RetryPeriod,
			"--secure-port=0",
			"--profiling=false",
			"--v=1",
			// Every renewal logged (client-go logs it at level 5), so
			// that the matrix reads when the lease was renewed from
			// the leader itself.
			"--vmodule=leaderelection=5",
		},
	}
	if err := c.spawn(); err != nil {
		return nil, err
	}
	return c, nil
}

// kubeconfig is a kubeconfig for the admin user of s at its own address.
func (s *Server) kubeconfig() []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: pair
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: pair
  context: {cluster: pair, user: admin}
current-context: pair
`, s.URL, s.PKI.CAFile, s.PKI.Token)
}

func (c *Component) spawn() error {
	p, err := harness.Start(c.spec)
	if err != nil {
		return err
	}
	c.proc = p
	return nil
}

func (c *Component) current() *harness.Proc { return c.proc }

// Running reports whether the process is alive.
func (c *Component) Running() bool { return c.proc != nil && c.proc.Running() }

// Stop terminates the component (SIGTERM, SIGKILL after StopTimeout).
func (c *Component) Stop() error {
	if c.proc == nil {
		return nil
	}
	return c.proc.StopTimeout(StopTimeout)
}

// What each component logs at v1.37 when it stops leading and exits
// (kube-controller-manager "leaderelection lost/stopped", kube-scheduler
// "Leaderelection lost"), and when it starts leading (client-go's
// leaderelection).
var (
	leaseLost     = regexp.MustCompile(`(?i)leaderelection lost`)
	leaseAcquired = regexp.MustCompile(`(?i)successfully acquired lease`)
	// klog's header (I1203 12:10:01.123456 ...) of a line that says the
	// lease was taken or renewed: logged once the write succeeded.
	leaseRenewed = regexp.MustCompile(`(?m)^I(\d{4} \d{2}:\d{2}:\d{2}\.\d{6}) .*Successfully (?:acquired|renewed) lease`)
)

// LeaseLosses counts, over the component's whole log (restarts append to
// it), how often it lost its lease: each is a k3s restart on a real node.
func (c *Component) LeaseLosses() (int, error) { return c.count(leaseLost) }

// LeasesAcquired counts how often it became the leader.
func (c *Component) LeasesAcquired() (int, error) { return c.count(leaseAcquired) }

func (c *Component) count(re *regexp.Regexp) (int, error) {
	b, err := c.log()
	return len(re.FindAll(b, -1)), err
}

// Renewals are the times at which this component took or renewed its
// lease, from its log (klog's local time, to the microsecond; the year,
// which klog leaves out, is now's).
func (c *Component) Renewals() ([]time.Time, error) {
	b, err := c.log()
	if err != nil {
		return nil, err
	}
	year := time.Now().Year()
	var out []time.Time
	for _, m := range leaseRenewed.FindAllSubmatch(b, -1) {
		t, err := time.ParseInLocation("2006 0102 15:04:05.000000", fmt.Sprintf("%d %s", year, m[1]), time.Local)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.LogPath, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// log is the whole log; none yet is empty.
func (c *Component) log() ([]byte, error) {
	b, err := os.ReadFile(c.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// ComponentBinary is the binary of name: $KUBE_CONTROLLER_MANAGER_BIN or
// $KUBE_SCHEDULER_BIN, checked (BuildScript links both to the one binary
// it builds with the API server).
func ComponentBinary(name string) (string, error) {
	switch name {
	case ControllerManager:
		return binaryFromEnv("KUBE_CONTROLLER_MANAGER_BIN", name)
	case Scheduler:
		return binaryFromEnv("KUBE_SCHEDULER_BIN", name)
	}
	return "", fmt.Errorf("apiserver: no component %q", name)
}
