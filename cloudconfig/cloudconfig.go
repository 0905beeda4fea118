// Package cloudconfig holds the yip stages baked into the image under
// /system/oem (scripts/install-two-node.sh copies *.yaml there). Each file
// explains its stages; the tests run them with yip's executor.
package cloudconfig

import "embed"

// Files are the baked stage files, by name.
//
//go:embed *.yaml
var Files embed.FS
