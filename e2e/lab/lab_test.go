package lab

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLab runs the README's first command as a newcomer would (without
// --keep) and checks what it promises: a failover, a first write through
// Kine, through the Kubernetes API and through the pair's address after the
// power loss, the address moved to the new leader, the old leader
// back as follower, nothing acknowledged lost. It uses the lab's own
// namespaces and directory, so it removes a lab left running.
func TestLab(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := Run(ctx, Options{Out: &out})
	t.Logf("lab output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`both API servers ready in `),
		regexp.MustCompile(`[+-]\s*\d+ms  b: follower → leader_alone`),
		regexp.MustCompile(`[+-]\s*\d+ms  first write accepted \(through b's Kine\)`),
		regexp.MustCompile(`[+-]\s*\d+ms  first write accepted through the Kubernetes API`),
		regexp.MustCompile(fmt.Sprintf(`[+-]\s*\d+ms  b takes the pair's address 10\.%d\.0\.100`, subnet)),
		regexp.MustCompile(`[+-]\s*\d+ms  the pair's address is on b alone`),
		regexp.MustCompile(`[+-]\s*\d+ms  first write accepted through the pair's address \(b's kube-apiserver\)`),
		regexp.MustCompile(`through Kine: [1-9]\d* writes acknowledged, 0 lost`),
		regexp.MustCompile(`through the Kubernetes API: [1-9]\d* writes acknowledged, 0 lost`),
		regexp.MustCompile(`kube-controller-manager: Lease renewed again \S+ after the power cut, by its instance on b`),
		regexp.MustCompile(`kube-scheduler: Lease renewed again \S+ after the power cut, by its instance on b`),
		regexp.MustCompile(`lab removed`),
	} {
		if !want.MatchString(got) {
			t.Errorf("the lab's output lacks %q", want)
		}
	}
	if strings.Contains(got, "no write accepted") {
		t.Error("the lab shows no write accepted after the power loss")
	}
}
