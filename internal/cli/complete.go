package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Shell completion of model names and version numbers, read from the cluster. A completion that
// cannot reach the cluster offers nothing.

// completeModel completes the first argument with the namespace's RegisteredModels.
func (r *root) completeModel(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := r.cluster()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	models, err := c.models(contextOf(cmd))
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	names := make([]string, 0, len(models))
	for _, m := range models {
		names = append(names, cobra.CompletionWithDesc(m.Name, m.Spec.Description))
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeModelThenVersion completes a model, then one of its versions.
func (r *root) completeModelThenVersion(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 1 {
		return r.completeVersion(cmd, args[0])
	}
	return r.completeModel(cmd, args, toComplete)
}

// completeVersion offers the version numbers of a model, each described by its stage and
// primary metric.
func (r *root) completeVersion(cmd *cobra.Command, model string) ([]string, cobra.ShellCompDirective) {
	c, err := r.cluster()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	versions, err := c.versions(contextOf(cmd), model)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	out := make([]string, 0, len(versions))
	for _, v := range versions {
		desc := strings.TrimSpace(fmt.Sprintf("%s %s", v.Status.Stage, v.Status.PrimaryMetric))
		out = append(out, cobra.CompletionWithDesc(fmt.Sprint(v.Spec.Version), desc))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// contextOf is the command's context, which cobra leaves nil when it completes without one.
func contextOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
