package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twonode-edge/twonode/bootstrap/fsm"
)

// FaultEnv names the environment variable that makes the agent die in the
// middle of a transition, FOR FAULT TESTS ONLY (the end-to-end scenarios
// of a crash inside a step): "after:ACTION" exits right after ACTION
// succeeded (after:promote is the agent killed between pg_promote and
// saving the term); "during:ACTION:DELAY" cancels ACTION after DELAY (its
// child process, pg_rewind or pg_basebackup, is killed half-way) and exits.
// The exit is immediate: no deferred cleanup runs, as with SIGKILL.
const FaultEnv = "TWONODE_FAULT_CRASH"

// Fault is a parsed FaultEnv.
type Fault struct {
	After  fsm.ActionKind
	During fsm.ActionKind
	Delay  time.Duration
}

// ParseFault reads FaultEnv's value ("" is no fault).
func ParseFault(s string) (Fault, error) {
	if s == "" {
		return Fault{}, nil
	}
	parts := strings.Split(s, ":")
	switch {
	case len(parts) == 2 && parts[0] == "after" && parts[1] != "":
		return Fault{After: fsm.ActionKind(parts[1])}, nil
	case len(parts) == 3 && parts[0] == "during" && parts[1] != "":
		d, err := time.ParseDuration(parts[2])
		if err != nil || d <= 0 {
			return Fault{}, fmt.Errorf("%s=%q: the delay must be a positive duration", FaultEnv, s)
		}
		return Fault{During: fsm.ActionKind(parts[1]), Delay: d}, nil
	}
	return Fault{}, fmt.Errorf("%s=%q: want after:ACTION or during:ACTION:DELAY", FaultEnv, s)
}

// crash ends the process at once, as a kill would.
func (a *Agent) crash(act fsm.ActionKind, when string) {
	a.log.Error("FAULT TEST: the agent dies "+when+" an action", "action", act)
	os.Exit(137)
}

// withFault runs one action under the configured fault, if it names it.
func (a *Agent) withFault(ctx context.Context, act fsm.Action, run func(context.Context) error) error {
	f := a.d.Fault
	if f.During != "" && act.Kind == f.During {
		c, cancel := context.WithTimeout(ctx, f.Delay)
		defer cancel()
		err := run(c)
		a.crash(act.Kind, fmt.Sprintf("%s into (err: %v)", f.Delay, err))
	}
	err := run(ctx)
	if err == nil && f.After != "" && act.Kind == f.After {
		a.crash(act.Kind, "right after")
	}
	return err
}
