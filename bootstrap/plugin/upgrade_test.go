package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/localapi"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

// fakeAgent is the local agent: a scripted sequence of status reports (the
// last one repeats), and the pause and resume calls it got.
type fakeAgent struct {
	statuses  []localapi.StatusReport
	errs      []error // per status call, nil when shorter
	down      bool    // the agent never answers
	calls     int
	pauses    int
	pausedFor time.Duration // the last Pause's duration
	resumes   int
	until     time.Time // PausedUntil after a Pause
	// switchovers counts hand-overs; refuse, if set, is the agent's refusal.
	switchovers int
	refuse      error
}

func (f *fakeAgent) Status(context.Context) (localapi.StatusReport, error) {
	i := f.calls
	f.calls++
	if f.down {
		return localapi.StatusReport{}, notUp
	}
	if i < len(f.errs) && f.errs[i] != nil {
		return localapi.StatusReport{}, f.errs[i]
	}
	if i >= len(f.statuses) {
		i = len(f.statuses) - 1
	}
	st := f.statuses[i]
	if f.pauses > 0 && st.PausedUntil.IsZero() && st.Paused {
		st.PausedUntil = f.until
	}
	return st, nil
}

func (f *fakeAgent) Pause(_ context.Context, d time.Duration) (string, error) {
	f.pauses++
	f.pausedFor = d
	for i := range f.statuses {
		f.statuses[i].Paused, f.statuses[i].PausedUntil = true, f.until
	}
	return "paused on edge-1 and edge-2 until 14:00:00 UTC", nil
}

// Switchover hands over when this node leads with its follower there: the
// reports that follow say "follower".
func (f *fakeAgent) Switchover(context.Context) (string, error) {
	f.switchovers++
	if f.refuse != nil {
		return "", f.refuse
	}
	for i := range f.statuses {
		f.statuses[i].State = "follower"
	}
	return "edge-1 handed over to edge-2 and is rejoining as follower", nil
}

func (f *fakeAgent) Resume(context.Context) (string, error) {
	f.resumes++
	return "resumed on edge-1 and edge-2", nil
}

var (
	t0       = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	leader   = localapi.StatusReport{Node: "edge-1", State: "leader", PeerReachable: true}
	follower = localapi.StatusReport{Node: "edge-1", State: "follower", PeerReachable: true}
	starting = localapi.StatusReport{Node: "edge-1", State: "starting"}
	notUp    = &localapi.NotRunningError{Path: AgentSocket, Why: "no socket at"}
)

type upgradeTest struct {
	*Upgrade
	agent   *fakeAgent
	said    []string
	version string
}

func newUpgradeTest(t *testing.T, agent *fakeAgent) *upgradeTest {
	ut := &upgradeTest{agent: agent, version: "v3.5.0"}
	ut.Upgrade = &Upgrade{
		API:     agent,
		Marker:  filepath.Join(t.TempDir(), "twonode", "upgrade.json"),
		Version: func() string { return ut.version },
		Now:     func() time.Time { return t0 },
		Wait:    time.Second,
		Poll:    time.Millisecond,
		Healthy: 3,
		Say: func(problem bool, text string) {
			ut.said = append(ut.said, fmt.Sprintf("%t %s", problem, text))
		},
	}
	return ut
}

func (ut *upgradeTest) marker(t *testing.T) (marker, bool) {
	t.Helper()
	b, err := os.ReadFile(ut.Marker)
	if errors.Is(err, os.ErrNotExist) {
		return marker{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m, true
}

func TestUpgradeBegin(t *testing.T) {
	t.Run("pauses and records", func(t *testing.T) {
		ut := newUpgradeTest(t, &fakeAgent{statuses: []localapi.StatusReport{leader}, until: t0.Add(2 * time.Hour)})
		if err := ut.Begin(context.Background()); err != nil {
			t.Fatal(err)
		}
		if ut.agent.pauses != 1 {
			t.Errorf("%d pauses", ut.agent.pauses)
		}
		// The local API refuses a pause of 0 ("for" must be in (0, 24h]):
		// with no configured length, the agent's default pause_expiry.
		if ut.agent.pausedFor != 2*time.Hour {
			t.Errorf("paused for %v, want the default pause_expiry 2h", ut.agent.pausedFor)
		}
		m, ok := ut.marker(t)
		if want := (marker{FromVersion: "v3.5.0", PausedUntil: t0.Add(2 * time.Hour), Started: t0}); !ok || m != want {
			t.Errorf("marker %+v, want %+v", m, want)
		}
		if info, err := os.Stat(ut.Marker); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("marker mode: %v %v", info, err)
		}
	})
	t.Run("pauses for the configured pause_expiry", func(t *testing.T) {
		res, err := userdata.Parse([]byte(base))
		if err != nil {
			t.Fatal(err)
		}
		c := res.Block.AgentConfig()
		c.Timers.PauseExpiry = 45 * time.Minute
		content, err := configFile(c, "")
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := configuredPause(cfg); got != 45*time.Minute {
			t.Errorf("configuredPause = %v, want 45m", got)
		}
		if got := configuredPause(filepath.Join(t.TempDir(), "none.yaml")); got != 2*time.Hour {
			t.Errorf("configuredPause of a missing file = %v, want the default 2h", got)
		}
		ut := newUpgradeTest(t, &fakeAgent{statuses: []localapi.StatusReport{leader}, until: t0.Add(time.Hour)})
		ut.PauseFor = 45 * time.Minute
		if err := ut.Begin(context.Background()); err != nil {
			t.Fatal(err)
		}
		if ut.agent.pausedFor != 45*time.Minute {
			t.Errorf("paused for %v, want 45m", ut.agent.pausedFor)
		}
	})
	t.Run("no agent: nothing to pause", func(t *testing.T) {
		ut := newUpgradeTest(t, &fakeAgent{statuses: []localapi.StatusReport{leader}, errs: []error{notUp}})
		if err := ut.Begin(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ok := ut.marker(t); ok || ut.agent.pauses != 0 {
			t.Errorf("marker written or pause taken without an agent")
		}
		if want := []string{"false the twonode agent is not running on this node: nothing to pause for the upgrade"}; fmt.Sprint(ut.said) != fmt.Sprint(want) {
			t.Errorf("said %q", ut.said)
		}
	})
	t.Run("a lone node is warned about", func(t *testing.T) {
		alone := localapi.StatusReport{State: "leader-alone"}
		ut := newUpgradeTest(t, &fakeAgent{statuses: []localapi.StatusReport{alone}, until: t0.Add(time.Hour)})
		if err := ut.Begin(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(ut.said) == 0 || ut.said[0] != "true warning: this node is leader-alone and its peer does not answer: while this node reboots for the upgrade the pair may have no datastore" {
			t.Errorf("said %q", ut.said)
		}
	})
}

func TestUpgradeFinish(t *testing.T) {
	until := t0.Add(2 * time.Hour)
	paused := func(st localapi.StatusReport, u time.Time) localapi.StatusReport {
		st.Paused, st.PausedUntil = true, u
		return st
	}
	for _, c := range []struct {
		name     string
		statuses []localapi.StatusReport
		errs     []error
		down     bool
		version  string
		resumes  int
		err      string
		said     string // one line that must be said
	}{
		{name: "back in the pair: resumes", statuses: []localapi.StatusReport{paused(follower, until)}, version: "v3.6.0",
			resumes: 1, said: "false upgraded from v3.5.0 to v3.6.0"},
		{name: "agent not up yet, then starting, then paired", errs: []error{notUp, notUp},
			statuses: []localapi.StatusReport{{}, {}, paused(starting, until), paused(leader, until)}, version: "v3.6.0", resumes: 1},
		{name: "paired must hold three looks in a row",
			statuses: []localapi.StatusReport{paused(leader, until), paused(leader, until), paused(starting, until), paused(leader, until)}, version: "v3.6.0", resumes: 1},
		{name: "image unchanged: resumes all the same", statuses: []localapi.StatusReport{paused(leader, until)}, version: "v3.5.0",
			resumes: 1, said: "true the image is still v3.5.0: the upgrade did not complete or was rolled back; ending its pause all the same"},
		// The returning node learns the pause from its peer, as now + the
		// time left: an end a few milliseconds off the recorded one.
		{name: "the same pause, as learnt from the peer: resumes", statuses: []localapi.StatusReport{paused(leader, until.Add(7*time.Millisecond))}, version: "v3.6.0",
			resumes: 1},
		{name: "a newer pause is left alone", statuses: []localapi.StatusReport{paused(leader, until.Add(time.Hour))}, version: "v3.6.0",
			said: "false a newer pause (until 2026-11-22T15:00:00Z) was taken after this upgrade's (until 2026-11-22T14:00:00Z): left to whoever took it"},
		{name: "the pause has ended already", statuses: []localapi.StatusReport{leader}, version: "v3.6.0",
			said: "false the pause has ended already (expired, or resumed by hand)"},
		{name: "the pair never forms again", statuses: []localapi.StatusReport{paused(starting, until)}, version: "v3.6.0",
			err: "the pair did not form again within 20ms after the upgrade (this node is starting and its peer does not answer): the pause stays until its expiry, or `twonode resume`"},
		{name: "the agent never comes up", down: true, version: "v3.6.0",
			err: "the pair did not form again within 20ms after the upgrade (twonode agent is not running (no socket at /run/twonode/agent.sock)): the pause stays until its expiry, or `twonode resume`"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ut := newUpgradeTest(t, &fakeAgent{statuses: c.statuses, errs: c.errs, down: c.down})
			ut.version = c.version
			if c.err != "" {
				ut.Wait = 20 * time.Millisecond // it will time out
			}
			if err := writeFile(ut.Marker, []byte(`{"from_version":"v3.5.0","paused_until":"2026-11-22T14:00:00Z","started":"2026-11-22T12:00:00Z"}`)); err != nil {
				t.Fatal(err)
			}
			err := ut.Finish(context.Background())
			if c.err == "" && err != nil || c.err != "" && (err == nil || err.Error() != c.err) {
				t.Errorf("err %v, want %q", err, c.err)
			}
			if ut.agent.resumes != c.resumes {
				t.Errorf("%d resumes, want %d", ut.agent.resumes, c.resumes)
			}
			if _, ok := ut.marker(t); ok {
				t.Errorf("the marker is still there")
			}
			if c.said != "" && !strings.Contains(strings.Join(ut.said, "\n"), c.said) {
				t.Errorf("said %q, want %q among them", ut.said, c.said)
			}
		})
	}
	t.Run("no marker: nothing to do", func(t *testing.T) {
		ut := newUpgradeTest(t, &fakeAgent{statuses: []localapi.StatusReport{leader}})
		if err := ut.Finish(context.Background()); err != nil || ut.agent.calls != 0 {
			t.Errorf("err %v, %d calls", err, ut.agent.calls)
		}
	})
}

// An upgrade of one node, then of the other, the second begun before the
// first node's finish has looked: the first leaves the second's pause, the
// second ends it. The pair is never left paused, nor resumed early.
func TestRollingUpgradeOfBothNodes(t *testing.T) {
	agent := &fakeAgent{statuses: []localapi.StatusReport{leader}, until: t0.Add(2 * time.Hour)}
	one := newUpgradeTest(t, agent)
	if err := one.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Node 2's upgrade pauses again, later.
	agent.until = t0.Add(3 * time.Hour)
	two := newUpgradeTest(t, agent)
	two.Now = func() time.Time { return t0.Add(time.Hour) }
	if err := two.Begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	one.version = "v3.6.0"
	if err := one.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if agent.resumes != 0 {
		t.Fatalf("node 1's finish ended node 2's pause")
	}
	two.version = "v3.6.0"
	if err := two.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	if agent.resumes != 1 {
		t.Errorf("%d resumes after both upgrades, want 1", agent.resumes)
	}
}

func TestImageVersion(t *testing.T) {
	dir := t.TempDir()
	kairos := filepath.Join(dir, "kairos-release")
	osr := filepath.Join(dir, "os-release")
	os.WriteFile(osr, []byte("NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\n"), 0o644)
	if got := ImageVersion(kairos, osr); got != "24.04" {
		t.Errorf("got %q", got)
	}
	os.WriteFile(kairos, []byte("KAIROS_VERSION=\"v3.5.0\"\nKAIROS_IMAGE_LABEL=\"24.04-standard-amd64-generic-v3.5.0-k3sv1.33.1+k3s1\"\n"), 0o644)
	if got := ImageVersion(kairos, osr); got != "24.04-standard-amd64-generic-v3.5.0-k3sv1.33.1+k3s1" {
		t.Errorf("got %q", got)
	}
	if got := ImageVersion(filepath.Join(dir, "none")); got != "unknown" {
		t.Errorf("got %q", got)
	}
}

// A leader hands over to its follower before it pauses the pair for its
// upgrade (writes then stop for a switchover, not for a reboot); a
// follower has nothing to hand over; a refused hand-over still upgrades.
func TestUpgradeBeginHandsOver(t *testing.T) {
	for _, c := range []struct {
		name        string
		st          localapi.StatusReport
		refuse      error
		switchovers int
		say         string
	}{
		{"a leader hands over", leader, nil, 1, "false this node follows the new leader: upgrading"},
		{"a follower does not", follower, nil, 0, ""},
		{"a leader alone cannot", localapi.StatusReport{Node: "edge-1", State: "leader_alone"}, nil, 0, ""},
		{"refused", leader, errors.New("the follower is not caught up"), 1,
			"true warning: this node leads and could not hand over before the upgrade (the follower is not caught up): writes stop while it reboots"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ut := newUpgradeTest(t, &fakeAgent{statuses: []localapi.StatusReport{c.st}, until: t0.Add(2 * time.Hour), refuse: c.refuse})
			if err := ut.Begin(context.Background()); err != nil {
				t.Fatal(err)
			}
			if ut.agent.switchovers != c.switchovers || ut.agent.pauses != 1 {
				t.Errorf("%d switchovers and %d pauses, want %d and 1", ut.agent.switchovers, ut.agent.pauses, c.switchovers)
			}
			if c.say != "" && !slices.Contains(ut.said, c.say) {
				t.Errorf("said %q, want among it %q", ut.said, c.say)
			}
		})
	}
}
