package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// rolloutOptions are the flags of pause, resume and abort: they wait as promote does.
type rolloutOptions struct {
	*promoteOptions
}

func newPauseCommand(r *root) *cobra.Command {
	return newModelCommand(r, (*rolloutOptions).pause, &cobra.Command{
		Use:   "pause MODEL",
		Short: "Hold a model's running canary rollout where it stands",
		Long: `Hold a model's running canary rollout: annotate the RegisteredModel
` + mlv1.AnnotationPauseRollout + `=true, then wait until the operator reports the rollout Paused.

While the annotation is set, the canary's step does not advance and its candidate is not promoted;
its pods and weights stay where they are. The online analysis keeps measuring, and a failure past a
metric's failureLimit still aborts the canary. A bake is not held. resume removes the annotation,
and the current step starts again from its beginning.`,
		Example: `  kubectl podium pause battle-winner-predictor

  # Annotate, and do not wait for the operator
  kubectl podium pause battle-winner-predictor --no-wait`,
	})
}

func newResumeCommand(r *root) *cobra.Command {
	return newModelCommand(r, (*rolloutOptions).resume, &cobra.Command{
		Use:   "resume MODEL",
		Short: "Resume a model's canary rollout that pause held",
		Long: `Resume a model's canary rollout held by pause: remove the annotation ` + mlv1.AnnotationPauseRollout + `
from the RegisteredModel, then wait until the operator has released the rollout. The current step
starts again from its beginning, and is measured again in full.

A rollout paused because its analysis is inconclusive (no data, Prometheus unreachable) is not
held by a person: it resumes by itself when measurements come back, and resume says why it waits.`,
		Example: `  kubectl podium resume battle-winner-predictor`,
	})
}

func newAbortCommand(r *root) *cobra.Command {
	return newModelCommand(r, (*rolloutOptions).abort, &cobra.Command{
		Use:   "abort MODEL",
		Short: "End a model's running canary rollout, and return its traffic to the Production version",
		Long: `Abort a model's running canary rollout: write spec.stage: Archived on the ModelVersion of its
candidate, then wait until the operator reports the rollout Aborted. The candidate becomes Archived
(reason ArchiveRequest), its canary pods are removed, and the Production version takes all the
traffic again.

An Archived version is never promoted automatically again; promote it by name to try it again.`,
		Example: `  kubectl podium abort battle-winner-predictor

  # Ask, and do not wait for the operator
  kubectl podium abort battle-winner-predictor --no-wait`,
	})
}

// newModelCommand completes cmd, which names one model (MODEL), to run act on it and wait as
// promote does: pause, resume, abort and delete differ only in what they do.
func newModelCommand(r *root, act func(*rolloutOptions, context.Context, string) error,
	cmd *cobra.Command) *cobra.Command {
	o := &rolloutOptions{&promoteOptions{root: r}}
	cmd.Args = cobra.ExactArgs(1)
	cmd.ValidArgsFunction = r.completeModel
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return act(o, cmd.Context(), args[0]) }
	o.addWaitFlags(cmd)
	return cmd
}

// pause annotates the model to hold its canary, and waits until the operator holds it.
func (o *rolloutOptions) pause(ctx context.Context, name string) error {
	c, err := o.cluster()
	if err != nil {
		return err
	}
	model, err := c.model(ctx, name)
	if err != nil {
		return err
	}
	ro := model.Status.Rollout
	if !ro.Canary() {
		return fmt.Errorf("RegisteredModel %s runs no canary rollout (%s); pause holds a running canary. To hold the next "+
			"canary from its start, annotate the model: kubectl annotate registeredmodel %s %s=true -n %s",
			name, lastRollout(ro), name, mlv1.AnnotationPauseRollout, c.namespace)
	}
	if pausedByAnnotation(model) {
		_, _ = fmt.Fprintf(o.streams.Out, "The canary rollout of version %d of %s is already paused by %s\n",
			ro.Version, name, mlv1.AnnotationPauseRollout)
		return writeRolloutLine(o.streams.Out, model, o.now())
	}
	value := "true"
	if err := c.annotateModel(ctx, model, mlv1.AnnotationPauseRollout, &value); err != nil {
		return err
	}
	if o.noWait {
		_, _ = fmt.Fprintf(o.streams.Out, "Asked to pause the canary rollout of version %d of %s (annotated it %s=true)\n",
			ro.Version, name, mlv1.AnnotationPauseRollout)
		return nil
	}
	model, err = o.waitForRollout(ctx, name, fmt.Sprintf("the canary rollout of version %d of %s to pause", ro.Version, name),
		func(m *mlv1.RegisteredModel) bool { return pausedByAnnotation(m) || !sameRollout(m.Status.Rollout, ro) })
	if err != nil {
		return err
	}
	if !pausedByAnnotation(model) {
		return fmt.Errorf("the canary rollout of version %d of %s ended before it was paused: %s",
			ro.Version, name, model.Status.Rollout.Message)
	}
	_, _ = fmt.Fprintf(o.streams.Out, "Paused the canary rollout of version %d of %s (annotated it %s=true)\n",
		ro.Version, name, mlv1.AnnotationPauseRollout)
	return writeRolloutLine(o.streams.Out, model, o.now())
}

// resume removes the model's pause annotation, and waits until the operator releases its canary.
func (o *rolloutOptions) resume(ctx context.Context, name string) error {
	c, err := o.cluster()
	if err != nil {
		return err
	}
	model, err := c.model(ctx, name)
	if err != nil {
		return err
	}
	ro := model.Status.Rollout
	if _, annotated := model.Annotations[mlv1.AnnotationPauseRollout]; !annotated {
		switch {
		case !ro.Canary():
			return fmt.Errorf("RegisteredModel %s runs no canary rollout (%s), and no %s annotation holds the next one: "+
				"there is nothing to resume", name, lastRollout(ro), mlv1.AnnotationPauseRollout)
		case ro.Phase == mlv1.RolloutPaused:
			_, _ = fmt.Fprintf(o.streams.Out, "The canary rollout of version %d of %s is not paused by %s: it is paused "+
				"because its analysis is inconclusive, and resumes by itself when measurements come back\n",
				ro.Version, name, mlv1.AnnotationPauseRollout)
		default:
			_, _ = fmt.Fprintf(o.streams.Out, "The canary rollout of version %d of %s is not paused; nothing to resume\n",
				ro.Version, name)
		}
		return writeRolloutLine(o.streams.Out, model, o.now())
	}
	if err := c.annotateModel(ctx, model, mlv1.AnnotationPauseRollout, nil); err != nil {
		return err
	}
	did := fmt.Sprintf("removed the annotation %s", mlv1.AnnotationPauseRollout)
	switch {
	case !ro.Canary():
		_, _ = fmt.Fprintf(o.streams.Out, "No canary rollout of %s runs; %s, which would have held the next one\n", name, did)
		return nil
	case o.noWait:
		_, _ = fmt.Fprintf(o.streams.Out, "Asked to resume the canary rollout of version %d of %s (%s)\n", ro.Version, name, did)
		return nil
	}
	model, err = o.waitForRollout(ctx, name, fmt.Sprintf("the canary rollout of version %d of %s to resume", ro.Version, name),
		func(m *mlv1.RegisteredModel) bool { return !pausedByAnnotation(m) })
	if err != nil {
		return err
	}
	after := model.Status.Rollout
	switch {
	case !sameRollout(after, ro):
		_, _ = fmt.Fprintf(o.streams.Out, "The canary rollout of version %d of %s ended (%s)\n", ro.Version, name, did)
	case after.Phase == mlv1.RolloutPaused:
		_, _ = fmt.Fprintf(o.streams.Out, "Resumed the canary rollout of version %d of %s (%s); it stays paused because "+
			"its analysis is inconclusive, and resumes by itself when measurements come back\n", ro.Version, name, did)
	default:
		_, _ = fmt.Fprintf(o.streams.Out, "Resumed the canary rollout of version %d of %s (%s); its step starts again "+
			"from its beginning\n", ro.Version, name, did)
	}
	return writeRolloutLine(o.streams.Out, model, o.now())
}

// abort archives the candidate of the model's canary, and waits until the operator aborts it.
func (o *rolloutOptions) abort(ctx context.Context, name string) error {
	c, err := o.cluster()
	if err != nil {
		return err
	}
	model, err := c.model(ctx, name)
	if err != nil {
		return err
	}
	ro := model.Status.Rollout
	if !ro.Canary() {
		return fmt.Errorf("RegisteredModel %s runs no canary rollout (%s); abort ends a running canary. "+
			"To take a Production version back, use kubectl podium rollback %s", name, lastRollout(ro), name)
	}
	candidate, err := c.versionUID(ctx, name, ro.Version, ro.VersionUID)
	if err != nil {
		return err
	}
	if err := c.requestStage(ctx, candidate, mlv1.StageArchived, requestIDFor(candidate, mlv1.StageArchived), false); err != nil {
		return err
	}
	if o.noWait {
		_, _ = fmt.Fprintf(o.streams.Out, "Asked to abort the canary rollout of version %d of %s "+
			"(wrote spec.stage: Archived on ModelVersion %s)\n", ro.Version, name, candidate.Name)
		return nil
	}
	model, err = o.waitForRollout(ctx, name, fmt.Sprintf("the canary rollout of version %d of %s to abort", ro.Version, name),
		func(m *mlv1.RegisteredModel) bool {
			return !sameRollout(m.Status.Rollout, ro) || !m.Status.Rollout.Canary()
		})
	if err != nil {
		return err
	}
	if now := model.Status.Rollout; !sameRollout(now, ro) || now.Phase != mlv1.RolloutAborted {
		return fmt.Errorf("the canary rollout of version %d of %s ended otherwise before the operator saw the request: %s; "+
			"ModelVersion %s asks for spec.stage: Archived", ro.Version, name, lastRollout(now), candidate.Name)
	}
	_, _ = fmt.Fprintf(o.streams.Out, "Aborted the canary rollout of version %d of %s: version %d is Archived, "+
		"and %s is Production\n", ro.Version, name, ro.Version, productionVersion(model))
	return writeRolloutLine(o.streams.Out, model, o.now())
}

// waitForRollout polls the model until done says the operator did what was asked, which what
// names, and returns the model as it was then. A line on stderr says what it waits for.
func (o *rolloutOptions) waitForRollout(ctx context.Context, name, what string,
	done func(*mlv1.RegisteredModel) bool) (*mlv1.RegisteredModel, error) {
	c, err := o.cluster()
	if err != nil {
		return nil, err
	}
	_, _ = fmt.Fprintf(o.streams.ErrOut, "Waiting up to %s for %s\n", o.timeout, what)
	deadline, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var last *mlv1.RegisteredModel
	err = o.poll(deadline, func() (bool, error) {
		m, err := c.model(ctx, name)
		if err != nil {
			return false, err
		}
		last = m
		return done(m), nil
	})
	if err == nil {
		return last, nil
	}
	report := "nothing"
	if last != nil {
		report = "RegisteredModel " + name + ": " + readyMessage(last.Status.Conditions)
	}
	return nil, timeoutError(deadline, err, fmt.Sprintf("timed out after %s waiting for %s; the operator reported last: %s. "+
		"Check that the Podium operator runs, and read its log", o.timeout, what, report))
}

// pausedByAnnotation says whether the operator reports the model's canary held by a person.
func pausedByAnnotation(m *mlv1.RegisteredModel) bool {
	ready := meta.FindStatusCondition(m.Status.Conditions, mlv1.ConditionReady)
	return m.Status.Rollout.Canary() && m.Status.Rollout.Phase == mlv1.RolloutPaused &&
		ready != nil && ready.Reason == mlv1.ReasonPausedByAnnotation
}

// sameRollout says whether a and b are the same rollout of the same version.
func sameRollout(a, b *mlv1.RolloutStatus) bool {
	return a != nil && b != nil && a.VersionUID == b.VersionUID &&
		(a.StartTime == nil) == (b.StartTime == nil) && (a.StartTime == nil || a.StartTime.Equal(b.StartTime))
}

// lastRollout says what became of a model's last rollout, for an error.
func lastRollout(ro *mlv1.RolloutStatus) string {
	switch {
	case ro == nil:
		return "it has had none"
	case ro.Phase == mlv1.RolloutBaking:
		return fmt.Sprintf("version %d is Production and baking, which neither pause nor abort holds back", ro.Version)
	case ro.Message != "":
		return fmt.Sprintf("its last, of version %d, is %s: %s", ro.Version, ro.Phase, ro.Message)
	}
	return fmt.Sprintf("its last, of version %d, is %s", ro.Version, ro.Phase)
}

// productionVersion names the model's Production version, for a sentence.
func productionVersion(m *mlv1.RegisteredModel) string {
	if p := m.Status.ProductionVersion; p != nil {
		return fmt.Sprintf("version %d", *p)
	}
	return "no version"
}

// writeRolloutLine writes the model's rollout as status shows it.
func writeRolloutLine(w io.Writer, m *mlv1.RegisteredModel, now time.Time) error {
	ro := m.Status.Rollout
	if ro == nil {
		return nil
	}
	_, err := fmt.Fprintf(w, "Rollout: %s\n", rolloutText(ro, m.Spec.Serving != nil && m.Spec.Serving.Rollout.GatewayAPI() != nil, now))
	return err
}
