package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/twonode-edge/twonode/bootstrap/archive"
	"github.com/twonode-edge/twonode/bootstrap/config"
)

// archiveCommand reads split-brain archives, which are sealed with a key
// derived from the cluster secret: it needs the node's configuration (for
// the secret and data_dir), not the agent.
func archiveCommand() *cli.Command {
	return &cli.Command{
		Name:  "archive",
		Usage: "read this node's split-brain archives (sealed with the cluster secret)",
		Subcommands: []*cli.Command{{
			Name:      "show",
			Usage:     "print archives as JSON lines (a header, then one Kine row per line); no PATH: every archive in data_dir/archive",
			ArgsUsage: "[PATH...]",
			Flags:     config.Flags(),
			Action: func(c *cli.Context) error {
				cfg, err := config.FromCLI(c)
				if err != nil {
					return cli.Exit("invalid configuration:\n"+err.Error(), 2)
				}
				secret, err := cfg.ReadSecret()
				if err != nil {
					return cli.Exit(err.Error(), 2)
				}
				paths := c.Args().Slice()
				if len(paths) == 0 {
					if paths, err = archive.Files(filepath.Join(cfg.DataDir, "archive")); err != nil {
						return err
					}
				}
				for _, p := range paths {
					if err := showArchive(os.Stdout, p, secret); err != nil {
						return cli.Exit(err.Error(), 1)
					}
				}
				return nil
			},
		}},
	}
}

// showArchive copies one archive's JSON lines to w. A sealed archive is
// authenticated as it is read: one cut short or altered ends in an error
// after what could be read.
func showArchive(w io.Writer, path string, secret []byte) error {
	r, err := archive.Open(path, secret)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	return nil
}
