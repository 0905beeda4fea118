// Package vip holds the pair's stable API address: a virtual IP that sits
// on the leader's network interface and nowhere else.
//
// # Why a virtual IP
//
// Each node's kube-apiserver (k3s) serves on the node's own address. A
// kubeconfig, or a worker that joins later, that names one node's address
// points at a dead machine after a failover. The virtual IP is a third
// address in the site subnet that follows the leader: k3s gets it in its
// tls-san, the written kubeconfig names it, workers join through it, and
// after a failover the same address answers from the other node.
//
// # The rule the agent follows
//
// The agent holds the address exactly while this node's Kine serves as the
// leader: it acquires it once Kine serves writes on the leader, and
// releases it the moment the node stops leading or fences (demotion,
// split-brain concession, pause hand-over, witness lease lost, shutdown of
// the leader's Kine). One leadership decision moves the database, Kine and
// the address together, so two nodes hold it only while two nodes lead (a
// split without a witness) and never otherwise. An agent that starts asks
// Held first: a crashed agent may have left the address behind, and a node
// that is not leading must release it before anything else.
//
// Acquire announces the new owner so that the switch (its MAC table) and
// the hosts on the segment (their ARP or neighbour caches) move to this
// node at once instead of after their cache entries expire: gratuitous ARP
// for IPv4, an unsolicited neighbour advertisement with the override flag
// for IPv6, three of them over about a second, the first immediately.
//
// # What a site provides
//
//   - a free address in the site subnet, written with the subnet's prefix
//     length (10.0.0.100/24, fd00:1::100/64), that no DHCP server hands
//     out and no other machine uses;
//   - both nodes on the same L2 segment (the same VLAN), since the address
//     moves by ARP and neighbour discovery, not by routing;
//   - a network that accepts gratuitous ARP and unsolicited neighbour
//     advertisements (switch features such as dynamic ARP inspection or
//     RA/ND guard must allow the two nodes to announce the address);
//     hosts whose cache has no entry for the address yet simply resolve
//     it when they first use it.
package vip
