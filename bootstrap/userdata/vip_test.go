package userdata_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/twonode-edge/twonode/bootstrap/config"
	"github.com/twonode-edge/twonode/bootstrap/userdata"
)

const vipBase = `twonode:
  enabled: true
  node: {name: a, address: 10.99.0.1}
  peer: {name: b, address: 10.99.0.2}
  secret_file: /oem/twonode/secret
  vip:
    address: 10.99.0.100/24
`

// The vip section reaches the agent as written; a mistake is named after
// its field and line, by the agent's own rules.
func TestVIP(t *testing.T) {
	for _, c := range []struct {
		name, old, new string
		want           []string
		agent          config.VIP
	}{
		{name: "address", agent: config.VIP{Address: "10.99.0.100/24"}},
		{name: "interface", old: "    address: 10.99.0.100/24\n", new: "    address: 10.99.0.100/24\n    interface: enp1s0\n",
			agent: config.VIP{Address: "10.99.0.100/24", Interface: "enp1s0"}},
		{name: "none", old: "  vip:\n    address: 10.99.0.100/24\n", new: ""},
		{name: "no length", old: "10.99.0.100/24", new: "10.99.0.100",
			want: []string{`twonode.vip.address (line 7): must be an address with the subnet's prefix length, such as 10.0.0.100/24 or fd00:1::100/64 (got "10.99.0.100")`}},
		{name: "the peer's address", old: "10.99.0.100/24", new: "10.99.0.2/24",
			want: []string{"twonode.vip.address (line 7): address 10.99.0.2 is the peer's address (peer.address): the virtual IP must be a third, free address"}},
		{name: "interface alone", old: "    address: 10.99.0.100/24\n", new: "    interface: enp1s0\n",
			want: []string{"twonode.vip.interface (line 7): is set but vip.address is empty: give the address, or remove the vip block"}},
		{name: "unknown key", old: "    address: 10.99.0.100/24\n", new: "    address: 10.99.0.100/24\n    mac: 02:00:00:00:00:01\n",
			want: []string{"twonode.vip.mac (line 8): unknown key; twonode.vip has address, interface"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ud := strings.Replace(vipBase, c.old, c.new, 1)
			res, err := userdata.Parse([]byte(ud))
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s\nin:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"), ud)
			}
			if err != nil {
				return
			}
			if got := res.Block.AgentConfig().VIP; got != c.agent {
				t.Errorf("the agent's vip: %+v, want %+v", got, c.agent)
			}
		})
	}
}
