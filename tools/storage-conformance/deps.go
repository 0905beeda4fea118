//go:build tools

package conformance

// The etcd3 storage tests are compiled from the k8s.io/apiserver module
// (scripts/build-apiserver.sh); this import keeps it and its test
// dependencies in go.mod and go.sum.
import (
	_ "k8s.io/apiserver/pkg/storage/etcd3"
)
