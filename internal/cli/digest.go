package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/podium-dev/podium/internal/bundle"
)

func newDigestCommand(r *root) *cobra.Command {
	p := &pushFlags{}
	cmd := &cobra.Command{
		Use:   "digest DIR | oci://REGISTRY/REPOSITORY:TAG",
		Short: "Print the digest of a model bundle, for register --digest",
		Long: `Print the digest of the model bundle in DIR: "sha256:" and the SHA-256 of the sha256sum listing
of every regular file below DIR, sorted by path. The operator checks a bundle against the digest of
its ModelVersion before it serves it. The same digest comes from the shell:

  cd DIR && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum

Given an oci:// reference instead, print the digest of the manifest its tag points at now: the
digest that pins an oci:// artifact.uri.`,
		Example: `  kubectl podium digest ./models/battle-winner/4

  kubectl podium register battle-winner-predictor --uri s3://ml-artifacts/battle-winner/4/ \
    --digest "$(kubectl podium digest ./models/battle-winner/4)" --metric test_accuracy=0.8723`,
		Args: cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var digest string
			var err error
			if strings.HasPrefix(args[0], bundle.SchemeOCI+"://") {
				var opts bundle.PushOptions
				if opts, err = p.options(); err == nil {
					digest, err = bundle.ResolveOCI(cmd.Context(), args[0], opts)
				}
			} else {
				digest, err = bundle.Digest(args[0])
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(r.streams.Out, digest)
			return err
		},
	}
	p.bind(cmd)
	return cmd
}
