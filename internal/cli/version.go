package cli

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func newVersionCommand(r *root) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and commit, and the version of the Podium manager it talks to",
		Long: `Print the plugin's version (the module version go install took, or (devel) for a build from
a checkout) and commit, and the version of every Podium manager Deployment the user may list
(labelled app.kubernetes.io/name=podium, in any namespace): its app.kubernetes.io/version label,
else its image's tag. A plugin of another release than the manager is warned about: the plugin
writes what the manager's CRDs and policies expect.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return r.version(cmd.Context()) },
	}
}

// manager is one Podium manager Deployment, as version reports it.
type manager struct {
	namespace, name, version, image string
}

func (r *root) version(ctx context.Context) error {
	plugin := pluginVersion()
	_, _ = fmt.Fprintf(r.streams.Out, "kubectl-podium: %s\n", plugin)
	managers, err := r.managers(ctx)
	if err != nil {
		_, _ = fmt.Fprintf(r.streams.Out, "manager:        unknown (%v)\n", err)
		return nil
	}
	if len(managers) == 0 {
		_, _ = fmt.Fprintln(r.streams.Out, "manager:        none found (no Deployment labelled app.kubernetes.io/name=podium "+
			"that you may list)")
		return nil
	}
	for _, m := range managers {
		_, _ = fmt.Fprintf(r.streams.Out, "manager:        %s (Deployment %s/%s, image %s)\n", m.version, m.namespace, m.name,
			m.image)
		writeMismatch(r.streams.ErrOut, plugin, m)
	}
	return nil
}

// pluginVersion is the module version and VCS revision the binary was built from.
func pluginVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return info.Main.Version + " (commit " + s.Value[:min(len(s.Value), 12)] + ")"
		}
	}
	return info.Main.Version
}

// writeMismatch warns when the plugin, released as version plugin, is not the manager's release.
// A plugin built from a checkout ((devel)) has no release to compare.
func writeMismatch(w io.Writer, plugin string, m manager) {
	release, _, _ := strings.Cut(plugin, " ")
	if !strings.HasPrefix(release, "v") || m.version == "" ||
		strings.TrimPrefix(release, "v") == strings.TrimPrefix(m.version, "v") {
		return
	}
	_, _ = fmt.Fprintf(w, "warning: kubectl-podium %s and the manager %s/%s (%s) are different releases; install the "+
		"plugin of the manager's: go install github.com/podium-dev/podium/cmd/kubectl-podium@v%s\n",
		release, m.namespace, m.name, m.version, strings.TrimPrefix(m.version, "v"))
}

// managers lists the Podium manager Deployments of every namespace.
func (r *root) managers(ctx context.Context) ([]manager, error) {
	c, err := r.cluster()
	if err != nil {
		return nil, err
	}
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DeploymentList"})
	if err := c.client.List(ctx, &list, client.MatchingLabels{"app.kubernetes.io/name": "podium"}); err != nil {
		return nil, fmt.Errorf("listing the Deployments labelled app.kubernetes.io/name=podium: %w", err)
	}
	var out []manager
	for _, d := range list.Items {
		containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		image := ""
		if len(containers) > 0 {
			image, _, _ = unstructured.NestedString(containers[0].(map[string]any), "image")
		}
		version := d.GetLabels()["app.kubernetes.io/version"]
		if version == "" {
			version = imageTag(image)
		}
		out = append(out, manager{namespace: d.GetNamespace(), name: d.GetName(), version: version, image: image})
	}
	return out, nil
}

// imageTag is the tag of an image reference, empty when it has none.
func imageTag(image string) string {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return ""
}
