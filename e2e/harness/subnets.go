package harness

import "fmt"

// Net is what one user of the end-to-end tests creates: network namespaces
// named Prefix-a, Prefix-b, ... on the site 10.Subnet.0.0/24. Two users
// sharing either would tear down or address each other's nodes, so every
// one is reserved below, in this one place, and TestNetsAreUnique checks
// that no two share a subnet or a prefix. A block (Size > 1) is a run of
// subnets handed out by position (Nth), as the fault matrix's table does.
type Net struct {
	Prefix string
	Subnet int
	Size   int // subnets reserved from Subnet on: 1, or a block's length
}

// Nth is member i of a block: subnet Subnet+i, prefix Prefix followed by
// that subnet. It panics past the block's end: a scenario without a subnet
// of its own would share one.
func (n Net) Nth(i int) Net {
	if i < 0 || i >= n.Size {
		panic(fmt.Sprintf("harness: member %d of the %d-subnet block %q", i, n.Size, n.Prefix))
	}
	s := n.Subnet + i
	return Net{Prefix: fmt.Sprint(n.Prefix, s), Subnet: s, Size: 1}
}

// reserved is every Net below, in the order reserved (for the test).
var reserved []Net

func reserve(prefix string, subnet int) Net { return reserveBlock(prefix, subnet, 1) }

func reserveBlock(prefix string, subnet, size int) Net {
	n := Net{Prefix: prefix, Subnet: subnet, Size: size}
	reserved = append(reserved, n)
	return n
}

// The end-to-end package (e2e/*_test.go), one pair per test.
var (
	NetCost                 = reserve("tnrs", 45)
	NetWitnessDown          = reserve("tnwd", 46)
	NetWitnessDownWait      = reserve("tnww", 47)
	NetWitnessDownPromote   = reserve("tnwr", 48)
	NetWitnessOnly          = reserve("tnwo", 49)
	NetWitnessSlow          = reserve("tnws", 50)
	NetWitnessPartition     = reserve("tnwp", 51)
	NetWitnessCrash         = reserve("tnwc", 52)
	NetWitnessWatchdog      = reserve("tnwf", 53)
	NetManualFailover       = reserve("tnmf", 54)
	NetLeaderCrash          = reserve("tnlc", 61)
	NetFollowerCrash        = reserve("tnfc", 62)
	NetSplitBrain           = reserve("tnsb", 63)
	NetPartitionBoth        = reserve("tnpb", 64)
	NetPromoteLeaderDead    = reserve("tnpd", 65)
	NetPromoteLeaderReturns = reserve("tnpr", 66)
	NetRestartLoop          = reserve("tnrl", 67)
	NetPostgresGone         = reserve("tnpg", 68)
	NetInterruptedPromote   = reserve("tnip", 69)
	NetAgentCrash           = reserve("tnac", 71)
	NetStarvedFollower      = reserve("tnsv", 72)
	NetCrashDuringRewind    = reserve("tnrw", 73)
	NetCrashDuringBackup    = reserve("tnbb", 74)
	NetSplitDiskFull        = reserve("tnsf", 78)
	NetPeerAPIFlood         = reserve("tnfl", 79)
	NetSkewedLeader         = reserve("tnsk", 100)
	NetConcurrentWrites     = reserve("tcw", 108)
	NetLongOutage           = reserve("tlo", 110)
)

// The other packages.
var (
	NetAppliance    = reserve("tnap", 70)         // e2e/appliance: the pair of appliances
	NetFirstBoot    = reserve("tnfb", 99)         // e2e/appliance: the first boot, at the addresses docs/user-data carry
	NetAPIServer    = reserve("tnas", 75)         // e2e/apiserver
	NetConformance  = reserve("tnsc", 76)         // e2e/apiserver: the storage conformance tests
	NetHarnessTwoX  = reserve("tnhx", 95)         // e2e/harness: TestTwoNetworks (prefix + pid)
	NetHarnessTwoY  = reserve("tnhy", 96)         // e2e/harness: TestTwoNetworks (prefix + pid)
	NetHarnessStale = reserve("tnhs", 97)         // e2e/harness: TestStaleCleanup (prefix + pid)
	NetHarnessSmoke = reserve("tnh", 98)          // e2e/harness: TestHarnessSmoke (prefix + pid)
	NetLab          = reserve("tnlab", 109)       // e2e/lab (make lab-up, the bench)
	NetComparePair  = reserve("cmp", 104)         // e2e/compare: the pair
	NetCompareEtcd  = reserve("cmpe", 105)        // e2e/compare: etcd's three members
	NetScale        = reserve("scl", 106)         // e2e/scale
	NetMatrix       = reserveBlock("tm", 120, 32) // e2e/matrix: one per row of its table, by position
)
