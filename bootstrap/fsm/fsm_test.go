package fsm

import (
	"os"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

var cfg = Config{FailureThreshold: 3, RecoverThreshold: 2, BootGrace: 30 * time.Second, JoinTimeout: 2 * time.Minute}

// fired records which rows the tests exercised; TestEveryRowCovered checks it.
var fired = map[string]bool{}

func key(from, to State, reason string) string { return string(from) + "|" + string(to) + "|" + reason }

func step(t *testing.T, m Machine, o Observation) (Machine, Decision) {
	t.Helper()
	m2, d := Step(m, o, cfg)
	if d.Changed {
		fired[key(d.From, d.To, d.Reason)] = true
	}
	return m2, d
}

func leaderSelf() Self {
	return Self{Name: "a", Member: true, HasData: true, Term: 4, TermRole: RoleLeader, PGUp: true, Primary: true, FollowerStreaming: true, KineServing: true}
}
func async(s Self) Self      { s.WasAsync = true; return s }
func kineOnPeer(s Self) Self { s.KineServing, s.KineOnPeer = false, true; return s }
func followerSelf() Self {
	return Self{Name: "b", Member: true, HasData: true, Term: 4, TermRole: RoleFollower, PGUp: true, ReceiverStreaming: true}
}
func leaderPeer() Peer {
	return Peer{Name: "a", AgentUp: true, PGUp: true, State: Leader, Member: true, Term: 4, TermRole: RoleLeader, Primary: true, KineServing: true}
}
func followerPeer() Peer {
	return Peer{Name: "b", AgentUp: true, PGUp: true, State: Follower, Member: true, Term: 4, TermRole: RoleFollower}
}

func in(s State) Machine { return Machine{State: s, Since: t0, Born: t0.Add(-time.Hour)} }

func kinds(acts []Action) string {
	var k []string
	for _, a := range acts {
		k = append(k, string(a.Kind))
	}
	return strings.Join(k, ",")
}

type tc struct {
	name    string
	m       Machine
	o       Observation
	to      State
	reason  string // substring; "" means no row fires
	actions string // exact action kinds, if set
}

func run(t *testing.T, cases []tc) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.o.Now.IsZero() {
				c.o.Now = t0
			}
			_, d := step(t, c.m, c.o)
			if c.reason == "" {
				if d.Changed {
					t.Fatalf("expected no transition, got %s → %s: %s", d.From, d.To, d.Reason)
				}
				return
			}
			if !d.Changed || d.To != c.to || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("got changed=%v %s → %s: %q; want → %s: %q", d.Changed, d.From, d.To, d.Reason, c.to, c.reason)
			}
			if c.actions != "" && kinds(d.Actions) != c.actions {
				t.Fatalf("actions %s, want %s", kinds(d.Actions), c.actions)
			}
		})
	}
}

func TestStarting(t *testing.T) {
	born := Machine{State: Starting, Since: t0, Born: t0} // just started
	late := Machine{State: Starting, Since: t0, Born: t0.Add(-time.Minute), Fails: 5}
	fresh := Self{Name: "a", Preferred: true}
	freshPeer := Peer{Name: "b", AgentUp: true, State: Starting}
	run(t, []tc{
		{"agent restart on a healthy leader keeps it", born, Observation{Self: leaderSelf(), Peer: followerPeer()}, Leader, "primary running", "ensure-slot,sync-on,kine-local"},
		{"agent restart on a streaming follower keeps it", born, Observation{Self: followerSelf(), Peer: leaderPeer()}, Follower, "standby streaming", "kine-peer"},
		{"fresh preferred node with a fresh peer forms the pair", born, Observation{Self: fresh, Peer: freshPeer}, LeaderAlone, "forming", "initdb,start-primary,new-term,ensure-slot,kine-local"},
		{"fresh non-preferred node waits for the leader", born, Observation{Self: Self{Name: "b"}, Peer: Peer{Name: "a", AgentUp: true}}, Starting, "", ""},
		{"fresh preferred node waits for the grace when the peer is silent", born, Observation{Self: fresh}, Starting, "", ""},
		{"fresh preferred node forms alone after the grace", late, Observation{Self: fresh}, LeaderAlone, "forming", ""},
		{"never-member node joins by base backup", born, Observation{Self: Self{Name: "a", Preferred: true}, Peer: leaderPeerNamed("b")}, Joining, "never a member", "kine-stop,announce-follow,base-backup,start-standby,kine-peer"},
		{"member with wiped data is a never-member", born, Observation{Self: Self{Name: "b", Member: true, Term: 9}, Peer: leaderPeer()}, Joining, "never a member", ""},
		{"returning old leader with a lower term rejoins and archives", born, Observation{Self: stoppedLeader(4), Peer: promotedPeer(5)}, Joining, "newer state", "kine-peer,archive,announce-follow,rewind,start-standby,adopt-term"},
		{"returning follower of the same leader just streams", born, Observation{Self: stoppedFollower(4), Peer: leaderPeer()}, Joining, "newer state", "kine-stop,announce-follow,start-standby,kine-peer,adopt-term"},
		{"a follower whose PostgreSQL stopped keeps its Kine on the leader while it streams again", born, Observation{Self: kineOnPeer(stoppedFollower(4)), Peer: leaderPeer()}, Joining, "newer state", "announce-follow,start-standby,kine-peer,adopt-term"},
		{"returning leader with the newest state leads", born, Observation{Self: stoppedLeader(5), Peer: stoppedFollowerPeer(4)}, LeaderAlone, "newest state", "start-primary,sync-off,ensure-slot,kine-local"},
		{"follower whose peer has no data takes over", born, Observation{Self: stoppedFollower(4), Peer: Peer{Name: "a", AgentUp: true}}, LeaderAlone, "follower takes over", "kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"follower whose peer has no data waits while paused", born, Observation{Self: paused(stoppedFollower(4)), Peer: Peer{Name: "a", AgentUp: true}}, Starting, "", ""},
		{"follower with a silent leader agent but live database follows", born, Observation{Self: stoppedFollower(4), Peer: Peer{Name: "a", PGUp: true}}, Joining, "database answers", "start-standby,kine-peer"},
		{"leader alone after the boot grace", late, Observation{Self: stoppedLeader(4)}, LeaderAlone, "follower unreachable", "start-primary,new-term,sync-off,ensure-slot,kine-local"},
		{"a leader whose data runs as a standby promotes it after the grace", late, Observation{Self: notStreamingAsLeader()}, LeaderAlone, "follower unreachable", "kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"a leader rebooted while alone goes on in its term after the grace", late, Observation{Self: wasAlone(stoppedLeader(4))}, LeaderAlone, "follower unreachable", "start-primary,sync-off,ensure-slot,kine-local"},
		{"a leader restarted while alone goes on in its term", born, Observation{Self: aloneLeader()}, LeaderAlone, "alone (asynchronous) as before", "sync-off,ensure-slot,kine-local"},
		{"a rebooted asynchronous leader whose follower took over begins that term too", born, Observation{Self: asyncWhenStopped(stoppedLeader(4)), Peer: promotedPeer(5)}, Starting, "compare last writes", "kine-stop,start-primary,new-term"},
		{"a restarted agent whose asynchronous primary runs, the peer leading a newer term: begins it too", born, Observation{Self: asyncWhenStopped(aloneLeader()), Peer: promotedPeer(5)}, Starting, "compare last writes", "kine-stop,new-term"},
		{"a rebooted synchronous leader whose follower took over rejoins", born, Observation{Self: stoppedLeader(4), Peer: promotedPeer(5)}, Joining, "newer state", "kine-peer,archive,announce-follow,rewind,start-standby,adopt-term"},
		{"a leader restarted asynchronous after a follower streamed begins a new term", born, Observation{Self: asyncFollowedLeader()}, LeaderAlone, "a new term", "new-term,sync-off,ensure-slot,kine-local"},
		{"a leader restarted while synchronous waits for the grace", born, Observation{Self: syncLeaderNoFollower()}, Starting, "", ""},
		{"leader waits within the boot grace", born, Observation{Self: stoppedLeader(4)}, Starting, "", ""},
		{"follower takes over after the boot grace", late, Observation{Self: stoppedFollower(4)}, LeaderAlone, "leader unreachable", "start-standby,kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"paused follower never takes over at boot", late, Observation{Self: paused(stoppedFollower(4))}, Starting, "", ""},
	})
}

func aloneLeader() Self {
	s := leaderSelf()
	s.FollowerStreaming, s.KineServing, s.WasAlone = false, true, true
	return s
}
func notStreamingAsLeader() Self {
	s := notStreaming()
	s.TermRole = RoleLeader
	return s
}
func wasAlone(s Self) Self          { s.WasAlone = true; return s }
func asyncWhenStopped(s Self) Self  { s.WasAsync = true; return s }
func asyncFollowedLeader() Self     { s := aloneLeader(); s.WasAlone = false; return s }
func syncLeaderNoFollower() Self    { s := aloneLeader(); s.SyncOn, s.WasAlone = true, false; return s }
func leaderPeerNamed(n string) Peer { p := leaderPeer(); p.Name = n; return p }
func stoppedLeader(term uint64) Self {
	return Self{Name: "a", Member: true, HasData: true, Term: term, TermRole: RoleLeader}
}
func stoppedFollower(term uint64) Self {
	return Self{Name: "b", Member: true, HasData: true, Term: term, TermRole: RoleFollower}
}
func notStreaming() Self { s := followerSelf(); s.ReceiverStreaming = false; return s }
func stoppedFollowerPeer(term uint64) Peer {
	return Peer{Name: "b", AgentUp: true, State: Starting, Member: true, Term: term, TermRole: RoleFollower}
}
func promotedPeer(term uint64) Peer {
	return Peer{Name: "b", AgentUp: true, PGUp: true, State: LeaderAlone, Member: true, Term: term, TermRole: RoleLeader, Primary: true}
}
func paused(s Self) Self { s.PausedUntil = t0.Add(time.Hour); return s }

func TestJoining(t *testing.T) {
	streaming := followerSelf()
	run(t, []tc{
		{"joining node streams and becomes follower", in(Joining), Observation{Self: streaming, Peer: leaderPeer()}, Follower, "streaming", "kine-peer,adopt-term"},
		{"a split's loser waits until the leader passed its revisions", in(Joining), Observation{Self: highRev(streaming, 1_000_500), Peer: fencedPast(leaderPeer(), 900)}, Joining, "", ""},
		{"a split's loser follows once the leader passed its revisions", in(Joining), Observation{Self: highRev(streaming, 1_000_500), Peer: fencedPast(leaderPeer(), 1_000_500)}, Follower, "streaming", "kine-peer,adopt-term"},
		{"joining waits while not streaming", in(Joining), Observation{Self: notStreaming(), Peer: leaderPeer()}, Joining, "", ""},
		{"joining with the local standby down starts over at once", in(Joining), Observation{Self: stoppedFollower(4), Peer: leaderPeer()}, Starting, "PostgreSQL is down", ""},
		{"joining gives up after the timeout", in(Joining), Observation{Now: t0.Add(3 * time.Minute), Self: notStreaming()}, Starting, "join timeout", ""},
	})
}

func TestFollower(t *testing.T) {
	down := leaderPeer()
	down.AgentUp, down.PGUp = false, false
	agentDown := leaderPeer()
	agentDown.AgentUp = false
	newTerm := leaderPeer()
	newTerm.Term, newTerm.State = 5, LeaderAlone
	run(t, []tc{
		{"handover promotes at once", in(Follower), Observation{Self: followerSelf(), Peer: leaderPeer(), Cmd: Command{Kind: CmdHandover, LSN: 7}}, LeaderAlone, "handed over", "kine-stop,promote,revision-fence,new-term,followed,kine-local,ensure-slot"},
		{"manual promote with the leader gone", in(Follower), Observation{Self: followerSelf(), Peer: down, Cmd: Command{Kind: CmdPromote}}, LeaderAlone, "operator", ""},
		{"manual promote refused while the leader's database answers", in(Follower), Observation{Self: followerSelf(), Peer: leaderPeer(), Cmd: Command{Kind: CmdPromote}}, Follower, "", ""},
		{"forced promote", in(Follower), Observation{Self: followerSelf(), Peer: leaderPeer(), Cmd: Command{Kind: CmdForcePromote}}, LeaderAlone, "operator", ""},
		{"local standby died", in(Follower), Observation{Self: stoppedFollower(4), Peer: leaderPeer()}, Starting, "PostgreSQL is down", ""},
		{"leader's new term is adopted", in(Follower), Observation{Self: followerSelf(), Peer: newTerm}, Follower, "adopting", "adopt-term"},
		{"leader's agent down but database up is healthy", Machine{State: Follower, Fails: 10}, Observation{Self: followerSelf(), Peer: agentDown}, Follower, "", ""},
	})
}

// A blip shorter than the detection window never promotes; a failure as
// long as the window does; a paused follower never does.
func TestFollowerDetection(t *testing.T) {
	down := leaderPeer()
	down.AgentUp, down.PGUp = false, false
	for _, tcase := range []struct {
		name            string
		pattern         string // one char per tick: u = leader up, d = down, h = probes fail but WAL still arrives, s = everything times out here (this node's own reads too: starved)
		paused, promote bool
		splits          int // splits lost in the last hour
	}{
		{"probes time out while WAL still arrives: alive", "uhhhhhh", false, false, 0},
		{"WAL stops too: promote", "uhhhddd", false, true, 0},
		{"starved: its own reads time out too: no verdict", "usssssss", false, false, 0},
		{"starved, then the leader is really gone: promote", "usssddd", false, true, 0},
		{"blip of two probes", "uddu", false, false, 0},
		{"flapping never reaches three in a row", "ddudduddud", false, false, 0},
		{"three failed probes promote", "uddd", false, true, 0},
		{"paused never promotes", "udddddddddd", true, false, 0},
		{"after a lost split, three failed probes are not enough", "udddu", false, false, 1},
		{"after a lost split, six are", "udddddd", false, true, 1},
		{"after three lost splits, 23 are not enough", "u" + strings.Repeat("d", 23), false, false, 3},
		{"after three lost splits, 24 are", "u" + strings.Repeat("d", 24), false, true, 3},
		{"damping is capped at 8 times the window", "u" + strings.Repeat("d", 24), false, true, 9},
	} {
		t.Run(tcase.name, func(t *testing.T) {
			m := in(Follower)
			promoted := false
			for i, c := range tcase.pattern {
				s := followerSelf()
				if tcase.paused {
					s = paused(s)
				}
				s.RecentSplits = tcase.splits
				p := leaderPeer()
				if c == 'd' || c == 'h' || c == 's' {
					p = down
				}
				s.PeerHeard = c == 'h' || c == 'u'
				if c == 's' {
					s.PGUp, s.PGSlow, s.ReceiverStreaming = false, true, false
				}

				var d Decision
				m, d = step(t, m, Observation{Now: t0.Add(time.Duration(i) * 500 * time.Millisecond), Self: s, Peer: p})
				if d.To == LeaderAlone {
					promoted = true
					break
				}
			}
			if promoted != tcase.promote {
				t.Fatalf("promoted=%v, want %v", promoted, tcase.promote)
			}
		})
	}
}

func TestLeader(t *testing.T) {
	noFollower := leaderSelf()
	noFollower.FollowerStreaming = false
	run(t, []tc{
		{"switchover hands over", in(Leader), Observation{Self: leaderSelf(), Peer: followerPeer(), Cmd: Command{Kind: CmdSwitchover}}, Joining, "switchover", "kine-stop,handover,kine-peer,rewind,start-standby"},
		{"switchover refused without a streaming follower", in(Leader), Observation{Self: noFollower, Peer: followerPeer(), Cmd: Command{Kind: CmdSwitchover}}, Leader, "", ""},
		{"follower lost for the window degrades", Machine{State: Leader, Fails: 2}, Observation{Self: noFollower}, LeaderAlone, "asynchronous", "new-term,sync-off"},
		{"follower lost for less than the window keeps sync", Machine{State: Leader, Fails: 1}, Observation{Self: noFollower}, Leader, "", ""},
		{"probes fail but the standby still replies: keeps sync", Machine{State: Leader, Fails: 2}, Observation{Self: heardLeader()}, Leader, "", ""},
		{"local primary died", in(Leader), Observation{Self: stoppedLeader(4), Peer: followerPeer()}, Starting, "PostgreSQL is down", ""},
		{"a full disk hands over to a follower with room", in(Leader), Observation{Self: diskFull(leaderSelf()), Peer: followerPeer()}, Joining, "disk is full", "kine-stop,handover,kine-peer,rewind,start-standby"},
		{"a full disk stays when the follower's is full too", in(Leader), Observation{Self: diskFull(leaderSelf()), Peer: fullPeer(followerPeer())}, Leader, "", ""},
		{"a full disk stays while paused", in(Leader), Observation{Self: paused(diskFull(leaderSelf())), Peer: followerPeer()}, Leader, "", ""},
		{"a slow follower is left behind asynchronously", in(Leader), Observation{Self: slowFollower(leaderSelf()), Peer: followerPeer()}, LeaderAlone, "flushes are slow", "new-term,sync-off"},
		{"slow commits with a follower not seen fast change nothing", in(Leader), Observation{Self: slowCommits(leaderSelf()), Peer: followerPeer()}, Leader, "", ""},
		{"slow commits and a follower seen fast: hand over", in(Leader), Observation{Self: fastFollower(slowCommits(leaderSelf())), Peer: followerPeer()}, Joining, "commits are slow", "kine-stop,handover,kine-peer,rewind,start-standby"},
		{"slow commits, a fast follower whose disk is full: no hand-over", in(Leader), Observation{Self: fastFollower(slowCommits(leaderSelf())), Peer: fullPeer(followerPeer())}, Leader, "", ""},
		{"slow commits, a fast follower, paused: no hand-over", in(Leader), Observation{Self: paused(fastFollower(slowCommits(leaderSelf()))), Peer: followerPeer()}, Leader, "", ""},
		{"both disks slow: nothing changes", in(Leader), Observation{Self: slowFollower(slowCommits(leaderSelf())), Peer: followerPeer()}, Leader, "", ""},
		{"both slow, even with a stale fast figure: nothing changes", in(Leader), Observation{Self: fastFollower(slowFollower(slowCommits(leaderSelf()))), Peer: followerPeer()}, Leader, "", ""},
		{"a follower that lost a split earlier is passed first", in(Leader), Observation{Self: kineRev(leaderSelf(), 10), Peer: highRevPeer(followerPeer(), 20)}, Leader, "moving past them", "kine-stop,revision-fence,kine-local"},
		{"a peer with a higher term wins", in(Leader), Observation{Self: leaderSelf(), Peer: promotedPeer(5)}, Joining, "newer state", "kine-peer,archive,announce-follow,rewind,start-standby,adopt-term"},
	})
}

func TestLeaderAlone(t *testing.T) {
	run(t, []tc{
		{"a synchronous leader answers a follow of its term", in(Leader), Observation{Self: leaderSelf(), Peer: joiningPeer(), Cmd: Command{Kind: CmdFollow, Term: 4}}, Leader, "about to follow", "followed"},
		{"caught-up follower restores sync", Machine{State: LeaderAlone, OKs: 1}, Observation{Self: leaderSelf(), Peer: followerPeer()}, Leader, "synchronous again", "sync-on"},
		{"a caught-up follower whose flushes are slow stays asynchronous", Machine{State: LeaderAlone, OKs: 5}, Observation{Self: slowFollower(leaderSelf()), Peer: followerPeer()}, LeaderAlone, "", ""},
		{"one good probe is not enough", in(LeaderAlone), Observation{Self: leaderSelf(), Peer: followerPeer()}, LeaderAlone, "", ""},
		{"a follower that came back and is lost again: a new term", Machine{State: LeaderAlone, Fails: 2, Followed: true}, Observation{Self: aloneLeader()}, LeaderAlone, "a new term", "new-term"},
		{"the peer is about to follow this term: recorded", Machine{State: LeaderAlone}, Observation{Self: wasAlone(leaderSelf()), Peer: joiningPeer(), Cmd: Command{Kind: CmdFollow, Term: 4}}, LeaderAlone, "about to follow", "followed"},
		{"the peer asks to follow another term: refused", Machine{State: LeaderAlone}, Observation{Self: aloneLeader(), Peer: olderJoiningPeer(), Cmd: Command{Kind: CmdFollow, Term: 3}}, LeaderAlone, "", ""},
		{"a follower streams in an alone term: recorded", Machine{State: LeaderAlone}, Observation{Self: wasAlone(leaderSelf()), Peer: followerPeer()}, LeaderAlone, "recorded", "followed"},
		{"a follower that came back, rewinds and says so: no new term", Machine{State: LeaderAlone, Fails: 2, Followed: true}, Observation{Self: syncLeaderNoFollower(), Peer: rejoiningPeer()}, LeaderAlone, "", ""},
		{"a rejoining peer whose agent no longer answers is gone: a new term", Machine{State: LeaderAlone, Fails: 2, Followed: true}, Observation{Self: syncLeaderNoFollower(), Peer: silent(rejoiningPeer())}, LeaderAlone, "a new term", "new-term"},
		{"followed before a restart, lost again: a new term", Machine{State: LeaderAlone, Fails: 2}, Observation{Self: syncLeaderNoFollower()}, LeaderAlone, "a new term", "new-term"},
		{"lost for the window without ever following: no new term", Machine{State: LeaderAlone, Fails: 5}, Observation{Self: aloneLeader()}, LeaderAlone, "", ""},
		{"local primary died", in(LeaderAlone), Observation{Self: stoppedLeader(4)}, Starting, "PostgreSQL is down", ""},
		{"leading asynchronously, the peer leads a newer term: begin it too", in(LeaderAlone), Observation{Self: aloneLeader(), Peer: promotedPeer(5)}, LeaderAlone, "compare last writes", "kine-stop,new-term"},
		{"a synchronous leader whose peer leads a newer term rejoins", in(Leader), Observation{Self: leaderSelf(), Peer: promotedPeer(5)}, Joining, "newer state", "kine-peer,archive,announce-follow,rewind,start-standby,adopt-term"},
		{"a hand-over cut short after the peer took over: Kine stays on the peer while this node rejoins", in(Leader), Observation{Self: kineOnPeer(stoppedLeader(4)), Peer: promotedPeer(5)}, Joining, "newer state", "archive,announce-follow,rewind,start-standby,adopt-term"},
		{"split brain while both take writes: stop writes first", in(LeaderAlone), Observation{Self: serving(splitSelf(t0)), Peer: splitPeer(t0.Add(time.Second))}, LeaderAlone, "writes stop", "kine-stop"},
		{"split brain, the peer still takes writes: no decision yet", in(LeaderAlone), Observation{Self: splitSelf(t0), Peer: servingPeer(splitPeer(t0.Add(time.Second)))}, LeaderAlone, "", ""},
		{"split brain, both stopped, peer wrote last: archive and rejoin", in(LeaderAlone), Observation{Self: splitSelf(t0), Peer: splitPeer(t0.Add(time.Second))}, Joining, "newer state", "kine-stop,archive,announce-follow,rewind,start-standby,adopt-term"},
		{"split brain, both stopped, this node wrote last: wait for the peer to give way", in(LeaderAlone), Observation{Self: splitSelf(t0.Add(time.Second)), Peer: splitPeer(t0)}, LeaderAlone, "", ""},
		{"split decided, the peer gave way: writes resume", in(LeaderAlone), Observation{Self: splitSelf(t0.Add(time.Second)), Peer: joiningPeer()}, LeaderAlone, "writes resume", "kine-local"},
		{"a synchronous leader in a split stops writes too", in(Leader), Observation{Self: leaderSelf(), Peer: servingPeer(promotedPeer(4))}, Leader, "writes stop", "kine-stop"},
		{"a leader whose Kine is not serving starts it", in(Leader), Observation{Self: notServing(leaderSelf()), Peer: followerPeer()}, Leader, "writes resume", "kine-local"},
		{"split won, the loser's revisions are higher: fence past them", in(LeaderAlone), Observation{Self: kineRev(leaderSelf(), 1200), Peer: highRevPeer(joiningPeer(), 1_000_500)}, LeaderAlone, "moving past them", "kine-stop,revision-fence,kine-local"},
		{"split won, already past the loser's revisions: only record it", in(LeaderAlone), Observation{Self: kineRev(leaderSelf(), 2_000_000), Peer: highRevPeer(joiningPeer(), 1_000_500)}, LeaderAlone, "moving past them", "revision-fence"},
		{"the loser's revisions already passed: nothing to do", in(LeaderAlone), Observation{Self: fencedSelf(leaderSelf(), 1_000_500), Peer: highRevPeer(joiningPeer(), 1_000_500)}, LeaderAlone, "", ""},
	})
}

func highRev(s Self, r int64) Self     { s.HighRev = r; return s }
func kineRev(s Self, r int64) Self     { s.KineRev = r; return s }
func fencedSelf(s Self, r int64) Self  { s.FencedPast = r; return s }
func fencedPast(p Peer, r int64) Peer  { p.FencedPast = r; return p }
func highRevPeer(p Peer, r int64) Peer { p.HighRev = r; return p }
func diskFull(s Self) Self             { s.DiskFull = true; return s }
func fullPeer(p Peer) Peer             { p.DiskFull = true; return p }
func slowCommits(s Self) Self          { s.CommitSlow = true; return s }
func slowFollower(s Self) Self         { s.FollowerSlow = true; return s }
func fastFollower(s Self) Self         { s.FollowerFast = true; return s }
func joiningPeer() Peer                { p := followerPeer(); p.State = Joining; return p }
func rejoiningPeer() Peer              { p := joiningPeer(); p.Rejoining, p.PGUp = true, false; return p }
func silent(p Peer) Peer               { p.AgentUp = false; return p }
func olderJoiningPeer() Peer           { p := joiningPeer(); p.Term = 3; return p }

// splitSelf is one of two leaders of term 5, its Kine stopped.
func splitSelf(last time.Time) Self {
	s := leaderSelf()
	s.Term, s.FollowerStreaming, s.LastCommit, s.KineServing = 5, false, last, false
	return s
}
func notServing(s Self) Self  { s.KineServing = false; return s }
func serving(s Self) Self     { s.KineServing = true; return s }
func servingPeer(p Peer) Peer { p.KineServing = true; return p }
func splitPeer(last time.Time) Peer {
	p := promotedPeer(5)
	p.LastCommit = last
	return p
}

// Both nodes claiming leadership resolve to exactly one winner, whatever
// the facts: Wins is antisymmetric.
func TestWinsAntisymmetric(t *testing.T) {
	times := []time.Time{{}, t0, t0.Add(time.Millisecond)}
	for _, ta := range []uint64{3, 4} {
		for _, tb := range []uint64{3, 4} {
			for _, ra := range []Role{RoleLeader, RoleFollower} {
				for _, rb := range []Role{RoleLeader, RoleFollower} {
					for _, ca := range times {
						for _, cb := range times {
							a := Self{Name: "a", Member: true, HasData: true, Term: ta, TermRole: ra, LastCommit: ca}
							b := Self{Name: "b", Member: true, HasData: true, Term: tb, TermRole: rb, LastCommit: cb}
							wa, _ := Wins(a, asPeer(b))
							wb, _ := Wins(b, asPeer(a))
							if wa == wb {
								t.Fatalf("both %v: a=%+v b=%+v", wa, a, b)
							}
						}
					}
				}
			}
		}
	}
}

func asPeer(s Self) Peer {
	return Peer{Name: s.Name, Member: s.Member && s.HasData, Term: s.Term, TermRole: s.TermRole, LastCommit: s.LastCommit}
}

func TestFailedActionsHold(t *testing.T) {
	m := Machine{State: Leader, Fails: 2}
	_, d := Step(m, Observation{Now: t0, Self: stoppedLeader(4)}, cfg)
	if d.Hold.State != Leader || d.Hold.Fails != 3 {
		t.Fatalf("hold = %+v", d.Hold)
	}
}

func TestDiagramIsFresh(t *testing.T) {
	got, err := os.ReadFile("../../docs/state-machine.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != DiagramDoc() {
		t.Fatal("docs/state-machine.md is stale: run `go generate ./bootstrap/fsm`")
	}
}

// rowTests are the tests whose cases fire rows; TestEveryRowCovered runs
// them again as its own subtests, so that it holds under -run and
// -shuffle, not only after the others in file order.
var rowTests = map[string]func(*testing.T){
	"Starting": TestStarting, "Reconcile": TestReconcile, "Joining": TestJoining, "Follower": TestFollower,
	"FollowerDetection": TestFollowerDetection, "Leader": TestLeader, "LeaderAlone": TestLeaderAlone, "Witness": TestWitness, "OperatorPromotesAStartingNode": TestOperatorPromotesAStartingNode,
	"AJoinThatDidNotStreamCopiesAfresh": TestAJoinThatDidNotStreamCopiesAfresh, "AJoinWhoseWALIsGoneCopiesAfresh": TestAJoinWhoseWALIsGoneCopiesAfresh,
}

// TestEveryRowCovered checks that the tests fired every row of the table.
func TestEveryRowCovered(t *testing.T) {
	for name, f := range rowTests {
		t.Run(name, f)
	}
	for _, r := range Table {
		if !fired[key(r.From, r.To, r.Reason)] {
			t.Errorf("row not exercised by any test: %s → %s: %s", r.From, r.To, r.Reason)
		}
	}
}

// heardLeader: the follower's agent and database do not answer probes, but
// its walreceiver still streams and replied moments ago.
func heardLeader() Self {
	s := leaderSelf()
	s.PeerHeard = true
	return s
}

// The winner's fence carries the loser's revision: it must pass exactly
// what the loser's clients saw.
func TestFencePastCarriesTheLosersRevision(t *testing.T) {
	_, d := step(t, in(LeaderAlone), Observation{Self: kineRev(leaderSelf(), 1200), Peer: highRevPeer(joiningPeer(), 1_000_500)})
	for _, a := range d.Actions {
		if a.Kind == Fence && a.Rev != 1_000_500 {
			t.Fatalf("fence past %d, want 1000500", a.Rev)
		}
	}
}

// intent is a recorded, unfinished transition (see Intent).
func intent(s Self, in Intent) Self { s.Intent = &in; return s }

func TestReconcile(t *testing.T) {
	born := Machine{State: Starting, Since: t0, Born: t0}
	late := Machine{State: Starting, Since: t0, Born: t0.Add(-time.Minute), Fails: 5}
	promoted := followerSelf() // killed after pg_promote, before the term was saved
	promoted.Primary, promoted.ReceiverStreaming = true, false
	promoting := intent(promoted, Intent{From: Follower, To: LeaderAlone, Promotes: true, Term: 5})
	conceded := intent(stoppedLeader(4), Intent{From: LeaderAlone, To: Joining, Discards: true})
	deadPeer := Peer{Name: "a"}
	run(t, []tc{
		{"a promotion cut after pg_promote is finished, old leader dead", born, Observation{Self: promoting, Peer: deadPeer}, LeaderAlone, "cut short", "kine-stop,promote,revision-fence,new-term,kine-local,ensure-slot"},
		{"a promotion cut after pg_promote is finished, old leader back", born, Observation{Self: promoting, Peer: stoppedLeaderPeer(4)}, LeaderAlone, "cut short", ""},
		{"a stored follower running a primary finishes without an intent", born, Observation{Self: promoted, Peer: deadPeer}, LeaderAlone, "cut short", ""},
		{"a promotion recorded but not reached is forgotten", born, Observation{Self: intent(followerSelf(), Intent{Promotes: true, Term: 5}), Peer: leaderPeer()}, Starting, "nothing to finish", "clear-intent"},
		{"a conceded node rejoins again when the winner answers", born, Observation{Self: conceded, Peer: promotedPeer(4)}, Joining, "conceded", "kine-stop,archive,announce-follow,rewind,start-standby,adopt-term"},
		{"a node whose copy finished follows", born, Observation{Self: intent(notStreamingAsLeader(), Intent{Discards: true, Copied: true}), Peer: promotedPeer(4)}, Joining, "copy of the peer finished", "announce-follow,start-standby,adopt-term,clear-intent"},
		{"a conceded node never leads alone", late, Observation{Self: conceded}, Starting, "", ""},
		{"a conceded node never leads when the peer is a follower", born, Observation{Self: conceded, Peer: stoppedFollowerPeer(4)}, Starting, "", ""},
		{"a member whose copy was cut short never forms a new pair", late, Observation{Self: Self{Name: "a", Preferred: true, Member: true}}, Starting, "", ""},
		{"a rebooted leader starts its database to compare a same-term split", born, Observation{Self: stoppedLeader(5), Peer: promotedPeer(5)}, Starting, "last write is unknown", "start-primary"},
		{"the old leader waits while the peer finishes a cut promotion", born, Observation{Self: stoppedLeader(4), Peer: cutPromotionPeer(4)}, Starting, "", ""},
		{"a restarted leader in a split stops its Kine", born, Observation{Self: leaderSelf(), Peer: promotedPeer(4)}, Starting, "writes stop", "kine-stop"},
		{"a possibly promoted node rejoins by rewinding, not by streaming again", born, Observation{Self: intent(stoppedFollower(4), Intent{Promotes: true, Term: 5}), Peer: leaderPeer()}, Joining, "newer state", "kine-stop,announce-follow,rewind,start-standby,adopt-term"},
		{"a possibly promoted node keeps its intent while its database is down", born, Observation{Self: intent(stoppedFollower(4), Intent{Promotes: true, Term: 5}), Peer: Peer{Name: "a", PGUp: true}}, Starting, "", ""},
	})
	// Once both have stopped serving, the real last writes decide.
	a := stoppedLeader(5)
	a.PGUp, a.Primary, a.LastCommit = true, true, t0
	b := promotedPeer(5)
	b.KineServing, b.LastCommit = false, t0.Add(-time.Minute)
	if _, d := step(t, born, Observation{Now: t0, Self: a, Peer: b}); d.To != LeaderAlone {
		t.Fatalf("the rebooted leader that wrote last: %s → %s %q, want leader_alone", d.From, d.To, d.Reason)
	}
	b.KineServing = true
	if _, d := step(t, born, Observation{Now: t0, Self: a, Peer: b}); d.Changed {
		t.Fatalf("compared while the peer still serves: %s → %s %q", d.From, d.To, d.Reason)
	}
}

func stoppedLeaderPeer(term uint64) Peer {
	return Peer{Name: "a", AgentUp: true, State: Starting, Member: true, Term: term, TermRole: RoleLeader}
}

func cutPromotionPeer(term uint64) Peer {
	return Peer{Name: "b", AgentUp: true, PGUp: true, State: Starting, Member: true, Term: term, TermRole: RoleFollower, Primary: true}
}

// A loser whose rejoin failed once goes on rejoining while the winner
// serves again.
func TestConcededLoserRejoinsWhileTheWinnerServes(t *testing.T) {
	s := intent(leaderSelf(), Intent{Discards: true})
	s.KineServing = false
	p := servingPeer(promotedPeer(4))
	_, d := step(t, in(LeaderAlone), Observation{Now: t0, Self: s, Peer: p})
	if d.To != Joining {
		t.Fatalf("got %s → %s %q, want the rejoin", d.From, d.To, d.Reason)
	}
}

// A peer that conceded a split no longer stops the winner's writes.
func TestWinnerResumesWhenTheLoserConceded(t *testing.T) {
	s := leaderSelf()
	s.KineServing = false
	p := leaderPeer()
	p.Name, p.KineServing, p.Rejoining = "b", false, true
	_, d := step(t, in(LeaderAlone), Observation{Now: t0, Self: s, Peer: p})
	if !strings.Contains(d.Reason, "writes resume") {
		t.Fatalf("got %s → %s %q, want writes resume", d.From, d.To, d.Reason)
	}
}

// The machine forgets the follower once the new term began, so the row
// fires once per loss, not every tick.
func TestNewTermOncePerLoss(t *testing.T) {
	m, d := step(t, Machine{State: LeaderAlone, Fails: 2, Followed: true}, Observation{Now: t0, Self: aloneLeader()})
	if !d.Changed || m.Followed {
		t.Fatalf("changed %v, followed %v after the new term", d.Changed, m.Followed)
	}
	if _, d := step(t, m, Observation{Now: t0, Self: aloneLeader()}); d.Changed {
		t.Fatalf("fired again: %s", d.Reason)
	}
}

// A promotion begins the term after the newest this node knows, its
// replicated data included.
func TestPromotionBeginsAfterTheReplicatedTerm(t *testing.T) {
	s := followerSelf()
	s.DBTerm = 7
	_, d := step(t, Machine{State: Follower, Fails: 2}, Observation{Now: t0, Self: s})
	for _, a := range d.Actions {
		if a.Kind == NewTerm && a.Term != 8 {
			t.Fatalf("new term %d, want 8", a.Term)
		}
	}
}

// The table, not the API, decides which commands are answered "no change"
// (the effect holds already) and which are refused.
func TestRefusalsAnswer(t *testing.T) {
	for _, c := range []struct {
		s        State
		cmd      CommandKind
		noChange bool
	}{
		{Leader, CmdPromote, true}, {LeaderAlone, CmdForcePromote, true}, {Leader, CmdHandover, true},
		{Follower, CmdSwitchover, false}, {Joining, CmdHandover, false}, {Starting, CmdSwitchover, false},
	} {
		if r, _ := RefusalFor(c.s, c.cmd); r.NoChange != c.noChange || r.Why == "" {
			t.Errorf("%s in %s: no change %v (%q), want %v", c.cmd, c.s, r.NoChange, r.Why, c.noChange)
		}
	}
}

// A leader alone keeps the pair's address; a synchronous leader sets it
// aside one probe before the detection window ends (the follower may be
// taking over, and it commits nothing meanwhile); nothing else holds it.
// Once set aside, one good probe does not bring it back.
func TestHoldsAddress(t *testing.T) {
	c := Config{FailureThreshold: 3, HeardFor: 4}
	follows := Observation{Self: leaderSelf(), Peer: followerPeer()}
	quiet := Observation{Self: leaderSelf()}
	promoting := follows // the status of a follower mid-takeover
	leads := Observation{Self: aloneLeader(), Peer: promotedPeer(5)}
	for _, tc := range []struct {
		name   string
		m      Machine
		o      Observation
		parked bool
		want   bool
	}{
		{"alone, follower gone", Machine{State: LeaderAlone, Fails: 5}, quiet, false, true},
		{"alone after a stall, peer silent", Machine{State: LeaderAlone, Fails: 5}, quiet, true, true},
		{"alone after a stall, the peer leads", Machine{State: LeaderAlone}, leads, true, false},
		{"synchronous, healthy", Machine{State: Leader, OKs: 9}, follows, false, true},
		{"synchronous, one failed probe", Machine{State: Leader, Fails: 1}, quiet, false, true},
		{"synchronous, all but the last probe failed", Machine{State: Leader, Fails: 2}, quiet, false, false},
		{"set aside, one good probe", Machine{State: Leader, OKs: 1}, promoting, true, false},
		{"set aside, a window of good probes and the follower says it follows", Machine{State: Leader, OKs: 3}, follows, true, true},
		{"set aside, a window of good probes but its agent silent", Machine{State: Leader, OKs: 3}, quiet, true, false},
		{"set aside, its agent silent, good probes no longer than replication's memory", Machine{State: Leader, OKs: 5}, quiet, true, false},
		{"set aside, its agent silent, good probes longer than replication's memory", Machine{State: Leader, OKs: 6}, quiet, true, true},
		{"a follower", Machine{State: Follower}, follows, false, false},
		{"starting", Machine{State: Starting}, quiet, false, false},
	} {
		if got := tc.m.HoldsAddress(c, tc.o, tc.parked); got != tc.want {
			t.Errorf("%s: %t, want %t", tc.name, got, tc.want)
		}
	}
	// A window of one probe: set aside at the first failure.
	if (Machine{State: Leader, Fails: 1}).HoldsAddress(Config{FailureThreshold: 1}, quiet, false) {
		t.Error("threshold 1: a leader with one failed probe keeps the address")
	}
}
