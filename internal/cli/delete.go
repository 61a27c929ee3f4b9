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
	return newModelCommand(r, (*rolloutOptions).deleteModel, &cobra.Command{
		Use:   "delete MODEL",
		Short: "Delete a model, with a record that says you did",
		Long: `Delete a RegisteredModel so that the record of its deletion names you: mark it for deletion
(the annotation ` + mlv1.AnnotationDeleteRequested + `, which the governance admission policies
answer by stamping who set it in ` + mlv1.AnnotationDeleteRequestedBy + `), delete it, and wait
until it is gone. The operator writes the StageRecord of the deletion (reason ModelDeleted: when,
which version stopped serving, by whom) before the model goes; its Deployments and Service go
with it. Its ModelVersions stay, with no model, until you delete them, and its StageRecords stay
within the operator's retention bound: kubectl podium history MODEL still shows them.

The deletion is checked first with a server-side dry run, so a refused deletion changes nothing.
Where the namespace holds the ConfigMap podium-governance, only its approvers may delete a model
that has history, and only marked as theirs: kubectl delete alone is refused there
(docs/operations.md, "Governance").`,
		Example: `  kubectl podium delete battle-winner-predictor

  # Delete, and do not wait for the operator to record it
  kubectl podium delete battle-winner-predictor --no-wait`,
	})
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
	if err := c.deleteMarked(ctx, model); err != nil {
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

// deleteMarked deletes the model on the resourceVersion it was marked at, so that the deletion is
// of the mark this command wrote: when something else (the operator's status) wrote the model in
// between, it is read again and deleted if the mark is still this one.
func (c *cluster) deleteMarked(ctx context.Context, model *mlv1.RegisteredModel) error {
	uid, mark := model.UID, model.Annotations[mlv1.AnnotationDeleteRequested]
	for attempt := 0; ; attempt++ {
		rv := model.ResourceVersion
		err := c.client.Delete(ctx, model, client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			return nil
		case !apierrors.IsConflict(err) || attempt == 4:
			return fmt.Errorf("deleting RegisteredModel %s, marked for deletion: %w", model.Name, explain(err))
		}
		if err := c.client.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return fmt.Errorf("reading RegisteredModel %s again to delete it: %w", model.Name, explain(err))
		}
		if model.UID != uid || model.Annotations[mlv1.AnnotationDeleteRequested] != mark {
			return fmt.Errorf("RegisteredModel %s was marked for deletion again, or replaced, after this command marked "+
				"it, and was not deleted; run kubectl podium delete %s again", model.Name, model.Name)
		}
	}
}
