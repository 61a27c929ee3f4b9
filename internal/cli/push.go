package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/podium-dev/podium/internal/bundle"
)

// pushFlags are the registry flags of push and register --push.
type pushFlags struct {
	plainHTTP bool
	created   string
}

func (p *pushFlags) bind(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.plainHTTP, "plain-http", false, "Reach the registry over plain HTTP instead of HTTPS (a local registry)")
	cmd.Flags().StringVar(&p.created, "created", "", "Record this time (RFC 3339, or now) as the bundle's creation "+
		"time; without it the push records no time, so the same files always give the same digest")
}

// options are the push options: the credentials of ~/.docker/config.json (docker login, oras
// login), credential helpers included.
func (p *pushFlags) options() (bundle.PushOptions, error) {
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return bundle.PushOptions{}, fmt.Errorf("reading the docker config for the registry's credentials: %w", err)
	}
	opts := bundle.PushOptions{Credential: credentials.Credential(store), PlainHTTP: p.plainHTTP}
	switch p.created {
	case "":
	case "now":
		opts.Created = time.Now()
	default:
		if opts.Created, err = time.Parse(time.RFC3339, p.created); err != nil {
			return bundle.PushOptions{}, fmt.Errorf("--created %q: write an RFC 3339 time, such as 2026-12-07T10:00:00Z, "+
				"or now", p.created)
		}
	}
	return opts, nil
}

// push uploads the bundle in dir and returns the pinned reference.
func (p *pushFlags) push(ctx context.Context, dir, target string) (string, error) {
	opts, err := p.options()
	if err != nil {
		return "", err
	}
	return bundle.Push(ctx, dir, target, opts)
}

func newPushCommand(r *root) *cobra.Command {
	p := &pushFlags{}
	cmd := &cobra.Command{
		Use:   "push DIR oci://REGISTRY/REPOSITORY[:TAG]",
		Short: "Push a model bundle to an OCI registry and print its digest-pinned reference",
		Long: `Push the model bundle in DIR to an OCI registry as a CNCF ModelPack artifact, one layer per
file, and print the reference pinned by the manifest's digest, for register --uri. Files the
repository already holds are not uploaded again. The credentials come from ~/.docker/config.json
(docker login, oras login).`,
		Example: `  kubectl podium push ./models/battle-winner/4 oci://registry.example.com/ml/battle-winner:v4

  kubectl podium register battle-winner-predictor --push ./models/battle-winner/4 \
    --to oci://registry.example.com/ml/battle-winner --metric test_accuracy=0.8723`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return nil, cobra.ShellCompDirectiveFilterDirs
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pinned, err := p.push(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(r.streams.Out, pinned)
			return err
		},
	}
	p.bind(cmd)
	return cmd
}
