package plugin

import (
	"bytes"
	"strings"
	"testing"
)

func TestMainUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(nil, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "upgrade-begin") {
		t.Errorf("no argument: exit %d, stderr %q", code, errOut.String())
	}
	out.Reset()
	if code := Main([]string{"--help"}, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "agent-provider-twonode: the twonode Kairos plugin.") {
		t.Errorf("--help: exit %d, stdout %q", code, out.String())
	}
}
