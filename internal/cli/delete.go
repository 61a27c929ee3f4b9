package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func newDeleteCommand(r *root) *cobra.Command {
	var version string
	cmd := newModelCommand(r, func(o *rolloutOptions, ctx context.Context, name string) error {
		if version != "" {
			return o.deleteVersion(ctx, name, version)
		}
		return o.deleteModel(ctx, name)
	}, &cobra.Command{
		Use:   "delete MODEL [--version VERSION]",
		Short: "Delete a model or one of its versions, with a record that says you did",
		Long: `Delete a RegisteredModel so that the record of its deletion names you: mark it for deletion
(the annotation ` + mlv1.AnnotationDeleteRequested + `, which the governance admission policies
answer by stamping who set it in ` + mlv1.AnnotationDeleteRequestedBy + `), delete it, and wait
until it is gone. The operator writes the StageRecord of the deletion (reason ModelDeleted: when,
which version stopped serving, by whom) before the model goes; its Deployments and Service go
with it. Its ModelVersions stay, with no model, until you delete them, and its StageRecords stay
within the operator's retention bound: kubectl podium history MODEL still shows them.

With --version, delete one ModelVersion of the model the same way. When it is the Production
version, the operator retires it before it goes: the previous Production version is restored, and
the history entry (reason Deleted) names you. Any other version goes at once.

The deletion is checked first with a server-side dry run, so a refused deletion changes nothing.
Where the namespace holds the ConfigMap podium-governance, only its approvers may delete a model
that has history, and only marked as theirs: kubectl delete alone is refused there; and nobody
deletes a version that serves: an approver archives it first (docs/operations.md, "Governance").`,
		Example: `  kubectl podium delete battle-winner-predictor

  # Delete, and do not wait for the operator to record it
  kubectl podium delete battle-winner-predictor --no-wait

  # Delete version 4 of the model; if it is Production, version 3 serves again
  kubectl podium delete battle-winner-predictor --version 4`,
	})
	cmd.Flags().StringVar(&version, "version", "",
		"delete this version of the model (a number, or the ModelVersion's name) rather than the model")
	return cmd
}

// deleteModel checks the deletion with a dry run, marks the model, deletes it on the
// resourceVersion the mark left (so that nobody marks it again in between), and waits until the
// operator has recorded the deletion and the model is gone.
func (o *promoteOptions) deleteModel(ctx context.Context, name string) error {
	c, err := o.cluster()
	if err != nil {
		return err
	}
	model, err := c.model(ctx, name)
	if err != nil {
		return err
	}
	uid := model.UID
	if err := c.client.Delete(ctx, model, client.DryRunAll, client.Preconditions{UID: &uid}); err != nil {
		return fmt.Errorf("deleting RegisteredModel %s (nothing was changed): %w", name, explain(err))
	}
	mark := time.Now().UTC().Format(time.RFC3339Nano)
	if err := c.annotateModel(ctx, model, mlv1.AnnotationDeleteRequested, &mark); err != nil {
		return fmt.Errorf("marking RegisteredModel %s for deletion (nothing was changed): %w", name, err)
	}
	if err := c.deleteMarked(ctx, model, "RegisteredModel", "kubectl podium delete "+name); err != nil {
		return err
	}
	by := model.Annotations[mlv1.AnnotationDeleteRequestedBy]
	note := "recorded as deleted by " + by
	switch {
	case len(model.Status.History) == 0:
		note = "it had no history, so nothing is recorded"
	case by == "":
		note = "recorded as deleted by nobody known: the governance admission policies, which stamp who marked it, " +
			"are not installed"
	}
	if o.noWait {
		_, _ = fmt.Fprintf(o.streams.Out, "Deleting RegisteredModel %s (%s)\n", name, note)
		return nil
	}
	_, _ = fmt.Fprintf(o.streams.ErrOut, "Waiting up to %s for the operator to record the deletion of %s\n", o.timeout, name)
	deadline, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	err = o.poll(deadline, func() (bool, error) {
		m, err := c.findModel(ctx, name)
		return m == nil || m.UID != uid, err
	})
	if err != nil {
		return timeoutError(deadline, err, fmt.Sprintf("RegisteredModel %s is being deleted, but the operator has not "+
			"recorded its deletion within %s: is it running? (kubectl get pods -n podium-system; docs/troubleshooting.md, "+
			"\"A RegisteredModel stays Terminating\")", name, o.timeout))
	}
	_, _ = fmt.Fprintf(o.streams.Out, "RegisteredModel %s deleted (%s); its history stays: kubectl podium history %s\n",
		name, note, name)
	return nil
}

// deleteVersion deletes a version of a model as deleteModel deletes a model, and waits until it
// is gone: at once for a version that does not serve, once the operator has retired it for the
// Production version.
func (o *promoteOptions) deleteVersion(ctx context.Context, model, ref string) error {
	c, err := o.cluster()
	if err != nil {
		return err
	}
	v, err := c.version(ctx, model, ref)
	if err != nil {
		return err
	}
	uid := v.UID
	if err := c.client.Delete(ctx, v, client.DryRunAll, client.Preconditions{UID: &uid}); err != nil {
		return fmt.Errorf("deleting ModelVersion %s (nothing was changed): %w", v.Name, explain(err))
	}
	m, err := c.findModel(ctx, model)
	if err != nil {
		return err
	}
	serving := m != nil && m.Status.ProductionVersionUID == string(uid)
	mark := time.Now().UTC().Format(time.RFC3339Nano)
	if err := c.annotate(ctx, v, "ModelVersion", mlv1.AnnotationDeleteRequested, &mark); err != nil {
		return fmt.Errorf("marking ModelVersion %s for deletion (nothing was changed): %w", v.Name, err)
	}
	again := fmt.Sprintf("kubectl podium delete %s --version %d", model, v.Spec.Version)
	if err := c.deleteMarked(ctx, v, "ModelVersion", again); err != nil {
		return err
	}
	what := fmt.Sprintf("ModelVersion %s (version %d of %s)", v.Name, v.Spec.Version, model)
	by := v.Annotations[mlv1.AnnotationDeleteRequestedBy]
	note := "it was not Production, so no stage changes"
	switch {
	case serving && by == "":
		note = "it was Production; recorded as deleted by nobody known: the governance admission policies, which " +
			"stamp who marked it, are not installed"
	case serving:
		note = "it was Production; the history records that " + by + " deleted it"
	}
	if o.noWait {
		_, _ = fmt.Fprintf(o.streams.Out, "Deleting %s (%s)\n", what, note)
		return nil
	}
	if serving {
		_, _ = fmt.Fprintf(o.streams.ErrOut, "Waiting up to %s for the operator to retire %s\n", o.timeout, what)
	}
	deadline, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	err = o.poll(deadline, func() (bool, error) {
		got := &mlv1.ModelVersion{}
		err := c.client.Get(ctx, client.ObjectKeyFromObject(v), got)
		if isObjectNotFound(err) {
			return true, nil
		}
		return err == nil && got.UID != uid, explain(err)
	})
	if err != nil {
		return timeoutError(deadline, err, fmt.Sprintf("%s is being deleted, but the operator has not retired it within %s: "+
			"is it running? (kubectl get pods -n podium-system; docs/troubleshooting.md, \"A ModelVersion stays "+
			"Terminating\")", what, o.timeout))
	}
	_, _ = fmt.Fprintf(o.streams.Out, "%s deleted (%s)\n", what, note)
	if serving {
		if m, err := c.findModel(ctx, model); err == nil && m != nil {
			_, _ = fmt.Fprintf(o.streams.Out, "Production version of %s: %s; kubectl podium history %s shows why\n",
				model, productionVersion(m), model)
		}
	}
	return nil
}

// deleteMarked deletes an object on the resourceVersion it was marked at, so that the deletion is
// of the mark this command wrote: when something else (the operator's status) wrote the object in
// between, it is read again and deleted if the mark is still this one. again is the command that
// deletes it.
func (c *cluster) deleteMarked(ctx context.Context, obj client.Object, kind, again string) error {
	uid, mark := obj.GetUID(), obj.GetAnnotations()[mlv1.AnnotationDeleteRequested]
	for attempt := 0; ; attempt++ {
		rv := obj.GetResourceVersion()
		err := c.client.Delete(ctx, obj, client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			return nil
		case !apierrors.IsConflict(err) || attempt == 4:
			return fmt.Errorf("deleting %s %s, marked for deletion: %w", kind, obj.GetName(), explain(err))
		}
		if err := c.client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return fmt.Errorf("reading %s %s again to delete it: %w", kind, obj.GetName(), explain(err))
		}
		if obj.GetUID() != uid || obj.GetAnnotations()[mlv1.AnnotationDeleteRequested] != mark {
			return fmt.Errorf("%s %s was marked for deletion again, or replaced, after this command marked "+
				"it, and was not deleted; run %s again", kind, obj.GetName(), again)
		}
	}
}
