// Package cli holds the commands of the kubectl podium plugin: register a model version, compare
// the versions of a model, promote one or roll back, pause, resume or abort a canary rollout, and
// read a model's history and status. The commands only read objects, and write ModelVersion
// specs and the RegisteredModel's pause annotation; every decision is the operator's, read back
// from the objects' status.
package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// scheme knows Podium's types, the only typed objects the plugin reads.
var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(mlv1.AddToScheme(scheme))
	utilruntime.Must(authorizationv1.AddToScheme(scheme)) // the dashboard asks what its user may do
}

// NewCommand returns the root command of kubectl-podium, which reads and writes streams.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return newRootCommand(&root{streams: streams, now: time.Now, pollInterval: 500 * time.Millisecond})
}

// root holds what every command shares: the cluster flags, the streams, the clock and how often
// a wait looks at the cluster.
type root struct {
	flags *genericclioptions.ConfigFlags
	// namespaceOverride, when set, is the namespace instead of the flags' (the dashboard's
	// actions on a model of another namespace).
	namespaceOverride string
	streams           genericiooptions.IOStreams
	now               func() time.Time
	pollInterval      time.Duration
}

func newRootCommand(r *root) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubectl-podium",
		Short: "Register, compare, promote and roll back the versions of Podium models",
		Long: `kubectl podium works with Podium's RegisteredModels and ModelVersions.

It registers versions, compares their metrics, asks for a version to be promoted or rolled back
and waits until the Podium operator has made it so, pauses, resumes or aborts a canary rollout,
and shows a model's status and history.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl podium"},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	r.flags = genericclioptions.NewConfigFlags(true)
	r.flags.AddFlags(cmd.PersistentFlags())
	cmd.SetIn(r.streams.In)
	cmd.SetOut(r.streams.Out)
	cmd.SetErr(r.streams.ErrOut)
	cmd.AddCommand(
		newRegisterCommand(r),
		newCompareCommand(r),
		newPromoteCommand(r),
		newApproveCommand(r),
		newRollbackCommand(r),
		newPauseCommand(r),
		newResumeCommand(r),
		newAbortCommand(r),
		newDeleteCommand(r),
		newHistoryCommand(r),
		newStatusCommand(r),
		newDigestCommand(r),
		newPushCommand(r),
		newVersionCommand(r),
		newDashboardCommand(r),
	)
	return cmd
}

// namespace is the namespace the command works in: --namespace, else the kubeconfig context's.
func (r *root) namespace() (string, error) {
	if r.namespaceOverride != "" {
		return r.namespaceOverride, nil
	}
	ns, _, err := r.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from the kubeconfig: %w; pass --namespace", err)
	}
	return ns, nil
}

// cluster connects to the cluster that the kubeconfig flags name.
func (r *root) cluster() (*cluster, error) {
	ns, err := r.namespace()
	if err != nil {
		return nil, err
	}
	cfg, err := r.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w; point --kubeconfig or KUBECONFIG at one", err)
	}
	// A wait reads three objects twice a second; client-go's default of 5 requests a second
	// would throttle it, and warn about it.
	cfg.QPS, cfg.Burst = 50, 100
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return &cluster{client: c, namespace: ns}, nil
}
