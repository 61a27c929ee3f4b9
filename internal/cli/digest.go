package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/podium-dev/podium/internal/bundle"
)

func newDigestCommand(r *root) *cobra.Command {
	return &cobra.Command{
		Use:   "digest DIR",
		Short: "Print the digest of a model bundle, for register --digest",
		Long: `Print the digest of the model bundle in DIR: "sha256:" and the SHA-256 of the sha256sum listing
of every regular file below DIR, sorted by path. The operator checks a bundle against the digest of
its ModelVersion before it serves it. The same digest comes from the shell:

  cd DIR && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum`,
		Example: `  kubectl podium digest ./models/battle-winner/4

  kubectl podium register battle-winner-predictor --uri s3://ml-artifacts/battle-winner/4/ \
    --digest "$(kubectl podium digest ./models/battle-winner/4)" --metric test_accuracy=0.8723`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(_ *cobra.Command, args []string) error {
			digest, err := bundle.Digest(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(r.streams.Out, digest)
			return err
		},
	}
}
