package cli

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// promoteOptions are the flags of promote and rollback.
type promoteOptions struct {
	*root
	timeout time.Duration
	noWait  bool
	to      string // rollback only
	approve bool   // approve: the same request, said as an approval
	// skipRollout annotates the version ml.podium.dev/skip-rollout with the request: the
	// emergency path past a canary rollout (promote and approve only).
	skipRollout bool
}

func newPromoteCommand(r *root) *cobra.Command {
	return newVersionRequestCommand(&promoteOptions{root: r}, &cobra.Command{
		Use:   "promote MODEL VERSION",
		Short: "Make a version of a model Production, and wait until it is",
		Long: `Make a version of a model Production: write spec.stage: Production on its ModelVersion, then wait
until the operator has made it the model's Production version (and, when the model is served,
until it serves). The version replaced becomes Archived. A version whose gates fail is promoted
too: a person's request overrides the gates.

When the model rolls out by canary (spec.serving.rollout.strategy: Canary) and the version never
was Production, it first runs as the canary's candidate: promote waits through the steps (set
--timeout to cover them) and fails at once if the canary is aborted. --skip-rollout is the
emergency path: the version becomes Production at once.

VERSION is a version number (4 or v4) or the name of a ModelVersion.`,
		Example: `  kubectl podium promote battle-winner-predictor 4

  # Ask, and do not wait for the operator
  kubectl podium promote battle-winner-predictor 4 --no-wait

  # Emergency: no canary
  kubectl podium promote battle-winner-predictor 4 --skip-rollout`,
	})
}

func newApproveCommand(r *root) *cobra.Command {
	return newVersionRequestCommand(&promoteOptions{root: r, approve: true}, &cobra.Command{
		Use:   "approve MODEL VERSION",
		Short: "Approve a version of a model for Production, and wait until it is Production",
		Long: `Approve a version for Production: what promote does (write spec.stage: Production on its
ModelVersion, then wait until the operator has made it Production), said as an approval. With the
governance admission policies installed, the model's history records who approved, and approve
prints it.

Where the namespace holds the ConfigMap podium-governance, only its approvers may approve, and
not a version they registered themselves unless it allows that: the API server refuses the request
and says who may approve (docs/operations.md, "Governance").

VERSION is a version number (4 or v4) or the name of a ModelVersion.`,
		Example: `  kubectl podium approve battle-winner-predictor 4

  # Approve, and do not wait for the operator
  kubectl podium approve battle-winner-predictor 4 --no-wait`,
	})
}

// newVersionRequestCommand completes cmd, which names one version of a model (MODEL VERSION), as a
// Production request made with o: promote and approve differ only in their words.
func newVersionRequestCommand(o *promoteOptions, cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ExactArgs(2)
	cmd.ValidArgsFunction = o.completeModelThenVersion
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return o.run(cmd.Context(), args[0], func(*mlv1.RegisteredModel) (string, error) { return args[1], nil })
	}
	o.addWaitFlags(cmd)
	cmd.Flags().BoolVar(&o.skipRollout, "skip-rollout", false, "Emergency: make the version Production at once, "+
		"without the model's canary rollout (annotates it "+mlv1.AnnotationSkipRollout+"=true)")
	return cmd
}

func newRollbackCommand(r *root) *cobra.Command {
	o := &promoteOptions{root: r}
	cmd := &cobra.Command{
		Use:   "rollback MODEL [--to VERSION]",
		Short: "Make the previous Production version of a model Production again",
		Long: `Roll a model back: make the version that was Production before the current one Production again,
as the model's history records it, or the version named with --to. Then wait as promote does.

The operator keeps a rollback until a newer version is registered; the version rolled back from
becomes Archived and is never promoted automatically again.`,
		Example: `  # Back to the previous Production version
  kubectl podium rollback battle-winner-predictor

  # Back to version 2
  kubectl podium rollback battle-winner-predictor --to 2`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: r.completeModel,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0], o.rollbackTarget)
		},
	}
	cmd.Flags().StringVar(&o.to, "to", "", "The version to roll back to (a number or a ModelVersion name); "+
		"by default the previous Production version")
	_ = cmd.RegisterFlagCompletionFunc("to", func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return r.completeVersion(cmd, args[0])
	})
	o.addWaitFlags(cmd)
	return cmd
}

func (o *promoteOptions) addWaitFlags(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "How long to wait for the operator")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "Return once the request is written, without waiting for the operator")
}

// rollbackTarget is --to, else the previous Production version.
func (o *promoteOptions) rollbackTarget(model *mlv1.RegisteredModel) (string, error) {
	if o.to != "" {
		return o.to, nil
	}
	n, err := previousProduction(model)
	return strconv.FormatInt(n, 10), err
}

// previousProduction is the version that was Production before the current one: the newest
// history entry into Production of another version.
func previousProduction(model *mlv1.RegisteredModel) (int64, error) {
	current := model.Status.ProductionVersion
	for _, h := range slices.Backward(model.Status.History) {
		if h.To == mlv1.StageProduction && (current == nil || h.Version != *current) {
			return h.Version, nil
		}
	}
	return 0, fmt.Errorf("RegisteredModel %s has had no other Production version; "+
		"name the version to roll back to with --to VERSION", model.Name)
}

// run promotes the version that target picks from the model.
func (o *promoteOptions) run(ctx context.Context, modelName string, target func(*mlv1.RegisteredModel) (string, error)) error {
	c, err := o.cluster()
	if err != nil {
		return err
	}
	model, err := c.model(ctx, modelName)
	if err != nil {
		return err
	}
	ref, err := target(model)
	if err != nil {
		return err
	}
	v, err := c.version(ctx, modelName, ref)
	if err != nil {
		return err
	}
	n := v.Spec.Version
	if p := model.Status.ProductionVersion; p != nil && *p == n && v.Status.Stage == mlv1.StageProduction {
		_, _ = fmt.Fprintf(o.streams.Out, "Version %d of %s is already Production\n", n, modelName)
		if o.approve {
			_, _ = fmt.Fprintln(o.streams.Out, "Nothing to approve")
		}
		return nil
	}

	// The deadline bounds the waits, not the requests: see poll.
	deadline, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := o.requestProduction(ctx, c, v); err != nil {
		return err
	}
	if o.noWait {
		verb := "Asked for"
		if o.approve {
			verb = "Approved"
		}
		_, _ = fmt.Fprintf(o.streams.Out, "%s version %d of %s as Production\n", verb, n, modelName)
		return nil
	}
	if err := o.waitForProduction(ctx, deadline, c, modelName, v, model.Status.Rollout); err != nil {
		return err
	}
	if !o.approve {
		_, _ = fmt.Fprintf(o.streams.Out, "Version %d of %s is Production\n", n, modelName)
		return nil
	}
	model, err = c.model(ctx, modelName)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintln(o.streams.Out, approved(model, n))
	return nil
}

// approved says that version n of the model is Production, approved by whom the history records.
func approved(model *mlv1.RegisteredModel, n int64) string {
	for _, h := range slices.Backward(model.Status.History) {
		if h.Version == n && h.To == mlv1.StageProduction {
			if h.By != "" {
				return fmt.Sprintf("Version %d of %s is Production, approved by %s", n, model.Name, h.By)
			}
			break
		}
	}
	return fmt.Sprintf("Version %d of %s is Production, approved (the history does not say by whom: "+
		"the governance admission policies are not installed)", n, model.Name)
}

// requestProduction writes spec.stage: Production on v, in one request, which governance admits
// or refuses as a whole. The operator acts on a request when it changes, so a Production request
// it has already acted on (an earlier promotion of v, since replaced) is made new with a new
// spec.stageRequestID.
func (o *promoteOptions) requestProduction(ctx context.Context, c *cluster, v *mlv1.ModelVersion) error {
	return c.requestStage(ctx, v, mlv1.StageProduction, requestIDFor(v, mlv1.StageProduction), o.skipRollout)
}

// requestIDFor is the spec.stageRequestID of a new request for stage on v: a new one when v
// already requests that stage, else none (the request changes spec.stage, which makes it new).
func requestIDFor(v *mlv1.ModelVersion, stage mlv1.Stage) string {
	if v.Spec.Stage != stage {
		return ""
	}
	return newRequestID(time.Now())
}

// newRequestID is a spec.stageRequestID: the time, and random digits for requests within a second.
func newRequestID(now time.Time) string {
	return fmt.Sprintf("%s-%04x", now.UTC().Format("20060102T150405Z"), rand.IntN(1<<16))
}

// waitForProduction waits until the model's Production version is n, its ModelVersion's stage
// is Production, and a served model serves it. It writes a line on stderr each time what the
// operator reports changes.
func (o *promoteOptions) waitForProduction(ctx, deadline context.Context, c *cluster, model string, v *mlv1.ModelVersion,
	before *mlv1.RolloutStatus) error {
	n := v.Spec.Version
	_, _ = fmt.Fprintf(o.streams.ErrOut, "Waiting up to %s for version %d of %s to become Production\n", o.timeout, n, model)
	var last *progress
	err := o.poll(deadline, func() (bool, error) {
		p, err := c.progress(ctx, model, v.Name)
		if err != nil {
			return false, err
		}
		if last == nil || p.String() != last.String() {
			_, _ = fmt.Fprintf(o.streams.ErrOut, "  %s\n", p)
		}
		last = p
		if p.aborted(before) {
			return false, fmt.Errorf("the canary rollout of version %d of %s was aborted: %s; version %s is Production. "+
				"`kubectl podium status %s` shows the online gates' last values", n, model, p.rollout.Message,
				versionNumber(p.production), model)
		}
		return p.done(n), nil
	})
	if err == nil {
		return nil
	}
	report := "nothing"
	if last != nil {
		report = last.report()
	}
	return timeoutError(deadline, err, fmt.Sprintf("version %d of %s did not become Production within %s; the operator reported last: %s. "+
		"Check that the Podium operator runs, and read its log", n, model, o.timeout, report))
}

// poll calls check every pollInterval until it reports done or fails, or the deadline passes.
// check sends its requests with the command's context rather than the deadline's: client-go
// refuses a request that its rate limiter would delay past a deadline, with an error of its own
// that would hide the timeout.
func (o *promoteOptions) poll(deadline context.Context, check func() (bool, error)) error {
	return wait.PollUntilContextCancel(deadline, o.pollInterval, true, func(context.Context) (bool, error) { return check() })
}

// timeoutError is message when the deadline has passed, and err otherwise.
func timeoutError(deadline context.Context, err error, message string) error {
	if errors.Is(deadline.Err(), context.DeadlineExceeded) {
		return errors.New(message)
	}
	return err
}

// progress is what the operator reports about a Production request.
type progress struct {
	production   *int64
	versionName  string
	stage        mlv1.Stage
	versionReady string
	model        string
	modelReady   string
	serving      serving
	versionUID   string
	// rollout is the model's status.rollout: the canary of the version, when it has one.
	rollout *mlv1.RolloutStatus
}

// progress reads the model's and the version's status.
func (c *cluster) progress(ctx context.Context, model, versionName string) (*progress, error) {
	m, err := c.model(ctx, model)
	if err != nil {
		return nil, err
	}
	v := &mlv1.ModelVersion{}
	if err := c.client.Get(ctx, c.key(versionName), v); err != nil {
		return nil, explain(err)
	}
	s, err := c.serving(ctx, model)
	if err != nil {
		return nil, err
	}
	return &progress{
		production:   m.Status.ProductionVersion,
		versionName:  v.Name,
		stage:        v.Status.Stage,
		versionReady: readyMessage(v.Status.Conditions),
		model:        m.Name,
		modelReady:   readyMessage(m.Status.Conditions),
		serving:      s,
		versionUID:   string(v.UID),
		rollout:      m.Status.Rollout,
	}, nil
}

// canary is the rollout of the version, nil when the model's rollout is another version's.
func (p *progress) canary() *mlv1.RolloutStatus {
	if p.rollout == nil || p.rollout.VersionUID != p.versionUID {
		return nil
	}
	return p.rollout
}

// aborted says whether a canary of the version ended without it since before was read.
func (p *progress) aborted(before *mlv1.RolloutStatus) bool {
	ro := p.canary()
	if ro == nil || ro.Phase != mlv1.RolloutAborted {
		return false
	}
	return before == nil || before.VersionUID != ro.VersionUID || before.Phase != mlv1.RolloutAborted ||
		before.StartTime == nil || ro.StartTime == nil || !before.StartTime.Equal(ro.StartTime)
}

func (p *progress) done(n int64) bool {
	return p.production != nil && *p.production == n && p.stage == mlv1.StageProduction && p.serving.serves(n)
}

// String is the progress line: "Production version 4; version 3 is Archived".
func (p *progress) String() string {
	production := "no Production version"
	if p.production != nil {
		production = fmt.Sprintf("Production version %d", *p.production)
	}
	line := fmt.Sprintf("%s; %s is %s", production, p.versionName, orDash(p.stage))
	if ro := p.canary(); ro.Active() {
		line += fmt.Sprintf("; canary %s: %s", ro.Phase, ro.Message)
	}
	if p.serving.Requested {
		line += "; serving " + versionText(p.serving.Version)
	}
	return line
}

// report is what the operator said last, for a timeout.
func (p *progress) report() string {
	parts := []string{
		fmt.Sprintf("ModelVersion %s: %s", p.versionName, p.versionReady),
		fmt.Sprintf("RegisteredModel %s: %s", p.model, p.modelReady),
	}
	if p.serving.Requested {
		parts = append(parts, "serving "+versionText(p.serving.Version))
	}
	return strings.Join(parts, "; ")
}

// readyMessage renders the Ready condition: "Ready=True (Reconciled): Stage Archived".
func readyMessage(conds []metav1.Condition) string {
	c := meta.FindStatusCondition(conds, mlv1.ConditionReady)
	if c == nil {
		return "no Ready condition yet (the operator has not reconciled it)"
	}
	return fmt.Sprintf("Ready=%s (%s): %s", c.Status, c.Reason, c.Message)
}

func versionText(v *int64) string {
	if v == nil {
		return "no version"
	}
	return fmt.Sprintf("version %d", *v)
}

func versionNumber(v *int64) string {
	if v == nil {
		return "none"
	}
	return strconv.FormatInt(*v, 10)
}
