package harness

import "testing"

// TestNetsAreUnique: no two users of the end-to-end tests share a subnet
// or a namespace prefix (a block's members counted one by one). Needs no
// root: it only reads the reservations.
func TestNetsAreUnique(t *testing.T) {
	subnets, prefixes := map[int]string{}, map[string]bool{}
	for _, n := range reserved {
		if n.Size < 1 || n.Subnet < 1 || n.Subnet+n.Size-1 > 254 {
			t.Errorf("%q: subnets %d-%d are not in 1-254", n.Prefix, n.Subnet, n.Subnet+n.Size-1)
		}
		members, names := []Net{n}, []Net{n}
		if n.Size > 1 {
			members = nil
			for i := range n.Size {
				members = append(members, n.Nth(i))
			}
			names = append(names, members...) // the block's own prefix too
		}
		for _, m := range names {
			if prefixes[m.Prefix] {
				t.Errorf("prefix %q is reserved twice", m.Prefix)
			}
			prefixes[m.Prefix] = true
		}
		for _, m := range members {
			if other, ok := subnets[m.Subnet]; ok {
				t.Errorf("subnet %d is reserved by both %q and %q", m.Subnet, other, n.Prefix)
			}
			subnets[m.Subnet] = n.Prefix
		}
	}
	if len(reserved) < 40 {
		t.Errorf("only %d reservations: were some not registered?", len(reserved))
	}
}
