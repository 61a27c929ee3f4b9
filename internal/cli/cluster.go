package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// errNotInstalled is what every command says on a cluster without Podium's CRDs.
//
//nolint:staticcheck // ST1005: the message starts with a name, which keeps its capital
var errNotInstalled = errors.New("Podium is not installed in this cluster: the ml.podium.dev CRDs are missing; " +
	"install them with 'make install' in a Podium checkout, or 'kubectl apply --server-side -f config/crd/bases'")

// cluster reads and writes Podium's objects in one namespace, and turns the API server's errors
// into ones a person can act on.
type cluster struct {
	client    client.Client
	namespace string
}

// model returns the RegisteredModel called name.
func (c *cluster) model(ctx context.Context, name string) (*mlv1.RegisteredModel, error) {
	m, err := c.findModel(ctx, name)
	if err == nil && m == nil {
		err = c.modelNotFound(name)
	}
	return m, err
}

// findModel is model, with no model and no error when it does not exist.
func (c *cluster) findModel(ctx context.Context, name string) (*mlv1.RegisteredModel, error) {
	m := &mlv1.RegisteredModel{}
	if err := c.client.Get(ctx, c.key(name), m); err != nil {
		if isObjectNotFound(err) {
			return nil, nil
		}
		return nil, explain(err)
	}
	return m, nil
}

func (c *cluster) modelNotFound(name string) error {
	return fmt.Errorf("RegisteredModel %s not found in namespace %s; list them with kubectl get registeredmodels -n %s",
		name, c.namespace, c.namespace)
}

// records returns the StageRecords of the models created under a name. An error says why they
// cannot be read: the user may not list them, or the cluster lacks the kind.
func (c *cluster) records(ctx context.Context, model string) ([]mlv1.StageRecord, error) {
	var list mlv1.StageRecordList
	if err := c.client.List(ctx, &list, client.InNamespace(c.namespace),
		client.MatchingLabels{mlv1.LabelRecordModel: model}); err != nil {
		return nil, explain(err)
	}
	return list.Items, nil
}

// models returns the RegisteredModels of the namespace.
func (c *cluster) models(ctx context.Context) ([]mlv1.RegisteredModel, error) {
	var list mlv1.RegisteredModelList
	if err := c.client.List(ctx, &list, client.InNamespace(c.namespace)); err != nil {
		return nil, explain(err)
	}
	return list.Items, nil
}

// versions returns the ModelVersions of a model, ordered by version number, then name.
func (c *cluster) versions(ctx context.Context, model string) ([]mlv1.ModelVersion, error) {
	var list mlv1.ModelVersionList
	if err := c.client.List(ctx, &list, client.InNamespace(c.namespace)); err != nil {
		return nil, explain(err)
	}
	versions := slices.DeleteFunc(list.Items, func(v mlv1.ModelVersion) bool { return v.Spec.RegisteredModel != model })
	slices.SortFunc(versions, func(a, b mlv1.ModelVersion) int {
		return cmp.Or(cmp.Compare(a.Spec.Version, b.Spec.Version), cmp.Compare(a.Name, b.Name))
	})
	return versions, nil
}

// version finds one version of a model from what a person typed: a version number ("3" or
// "v3"), or the name of a ModelVersion.
func (c *cluster) version(ctx context.Context, model, ref string) (*mlv1.ModelVersion, error) {
	if n, ok := parseVersionNumber(ref); ok {
		return c.versionNumber(ctx, model, n)
	}
	v := &mlv1.ModelVersion{}
	if err := c.client.Get(ctx, c.key(ref), v); err != nil {
		if isObjectNotFound(err) {
			return nil, fmt.Errorf("ModelVersion %s not found in namespace %s; list the versions of %s with kubectl podium compare %s -n %s",
				ref, c.namespace, model, model, c.namespace)
		}
		return nil, explain(err)
	}
	if v.Spec.RegisteredModel != model {
		return nil, fmt.Errorf("ModelVersion %s is version %d of RegisteredModel %s, not of %s; name a version of %s",
			v.Name, v.Spec.Version, v.Spec.RegisteredModel, model, model)
	}
	return v, nil
}

// versionNumber returns the ModelVersion that is version n of a model.
func (c *cluster) versionNumber(ctx context.Context, model string, n int64) (*mlv1.ModelVersion, error) {
	versions, err := c.versions(ctx, model)
	if err != nil {
		return nil, err
	}
	var found []mlv1.ModelVersion
	for _, v := range versions {
		if v.Spec.Version == n {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("version %d of RegisteredModel %s not found in namespace %s; "+
			"list its versions with kubectl podium compare %s -n %s", n, model, c.namespace, model, c.namespace)
	case 1:
		return &found[0], nil
	}
	names := make([]string, len(found))
	for i := range found {
		names[i] = found[i].Name
	}
	return nil, fmt.Errorf("version %d of RegisteredModel %s is claimed by several ModelVersions (%s); delete all but one of them",
		n, model, strings.Join(names, ", "))
}

// requestStage writes spec.stage and spec.stageRequestID on a version as `kubectl patch
// --type=merge` does, in one request; an empty id removes spec.stageRequestID. skipRollout
// annotates the version, in the same patch, to skip the model's canary rollout.
func (c *cluster) requestStage(ctx context.Context, v *mlv1.ModelVersion, stage mlv1.Stage, id string, skipRollout bool) error {
	var requestID any // null removes the field
	if id != "" {
		requestID = id
	}
	patch := map[string]any{"spec": map[string]any{"stage": stage, "stageRequestID": requestID}}
	if skipRollout {
		patch["metadata"] = map[string]any{"annotations": map[string]any{mlv1.AnnotationSkipRollout: "true"}}
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := c.client.Patch(ctx, v, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("writing spec.stage on ModelVersion %s: %w", v.Name, explain(err))
	}
	return nil
}

// versionUID returns the ModelVersion of a model with the given UID, which is version n: the
// candidate a rollout names.
func (c *cluster) versionUID(ctx context.Context, model string, n int64, uid string) (*mlv1.ModelVersion, error) {
	versions, err := c.versions(ctx, model)
	if err != nil {
		return nil, err
	}
	for i := range versions {
		if string(versions[i].UID) == uid {
			return &versions[i], nil
		}
	}
	return nil, fmt.Errorf("the ModelVersion of version %d of RegisteredModel %s, the candidate of its canary rollout, "+
		"no longer exists; the operator ends the rollout by itself", n, model)
}

// annotateModel sets an annotation on a model as `kubectl annotate` does, or removes it when
// value is nil; with the model's UID, the patch applies to that object only, not to one created
// again under its name.
func (c *cluster) annotateModel(ctx context.Context, m *mlv1.RegisteredModel, key string, value *string) error {
	return c.annotate(ctx, m, "RegisteredModel", key, value)
}

// annotate is annotateModel for an object of any kind.
func (c *cluster) annotate(ctx context.Context, m client.Object, kind, key string, value *string) error {
	var v any // null removes the annotation
	if value != nil {
		v = *value
	}
	metadata := map[string]any{"annotations": map[string]any{key: v}}
	if m.GetUID() != "" {
		metadata["uid"] = m.GetUID()
	}
	body, err := json.Marshal(map[string]any{"metadata": metadata})
	if err != nil {
		return err
	}
	if err := c.client.Patch(ctx, m, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("annotating %s %s: %w", kind, m.GetName(), explain(err))
	}
	return nil
}

func (c *cluster) key(name string) client.ObjectKey {
	return client.ObjectKey{Namespace: c.namespace, Name: name}
}

// explain turns the errors of a cluster without Podium's CRDs into errNotInstalled. Until its
// discovery is refreshed, a client that knew the CRDs gets a 404 on their path instead.
func explain(err error) error {
	if meta.IsNoMatchError(err) || (apierrors.IsNotFound(err) && !isObjectNotFound(err)) {
		return errNotInstalled
	}
	return err
}

// isObjectNotFound says whether err is the API server saying that an object does not exist,
// rather than that the path of its kind does not: only the former names the object, in a Status
// the server wrote itself.
func isObjectNotFound(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	details := status.Status().Details
	if details == nil || details.Name == "" {
		return false
	}
	for _, cause := range details.Causes {
		if cause.Type == metav1.CauseTypeUnexpectedServerResponse {
			return false
		}
	}
	return true
}

// parseVersionNumber reads "3" or "v3".
func parseVersionNumber(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "v"), 10, 64)
	return n, err == nil
}

// versionName is the name register gives version n of a model.
func versionName(model string, n int64) string {
	return fmt.Sprintf("%s-%d", model, n)
}
