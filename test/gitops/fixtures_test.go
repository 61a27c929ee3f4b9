package gitops

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/testenv"
)

var update = flag.Bool("update", false,
	"rewrite testdata/*.json from the operator running on envtest (KUBEBUILDER_ASSETS)")

const ns = "gitops"

// TestUpdateFixtures rewrites testdata/*.json: it runs the operator's reconciler on envtest,
// applies config/samples, a version whose model does not exist and a second version 3, and saves
// each object once the operator has decided it.
func TestUpdateFixtures(t *testing.T) {
	if !*update {
		t.Skip("rewrites testdata only with -update")
	}
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	c := startOperator(t)
	ctx := t.Context()

	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	model := &mlv1.RegisteredModel{}
	readSample(t, "ml_v1alpha1_registeredmodel.yaml", model)
	model.Spec.Serving = nil // envtest runs no Deployment controller: a served model would stay RollingOut
	g.Expect(c.Create(ctx, model)).To(Succeed())
	versions := map[string]*mlv1.ModelVersion{}
	for _, n := range []string{"2", "3", "4"} {
		versions[n] = &mlv1.ModelVersion{}
		readSample(t, "ml_v1alpha1_modelversion_"+n+".yaml", versions[n])
		g.Expect(c.Create(ctx, versions[n])).To(Succeed())
	}
	g.Eventually(stage(ctx, c, versions["4"])).Should(Equal(mlv1.StageProduction))
	g.Eventually(stage(ctx, c, versions["2"])).Should(Equal(mlv1.StageNone))
	g.Eventually(condition(ctx, c, model, mlv1.ConditionReady)).Should(Equal(metav1.ConditionTrue))
	save(t, c, versions["4"], "modelversion-production")
	save(t, c, versions["2"], "modelversion-none")
	save(t, c, model, "registeredmodel-ready")

	orphan := &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "not-yet-created-1"},
		Spec: mlv1.ModelVersionSpec{RegisteredModel: "not-yet-created", Version: 1,
			Artifact: mlv1.Artifact{URI: "s3://ml-artifacts/not-yet-created/1/"}},
	}
	duplicate := versions["3"].DeepCopy()
	duplicate.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: "battle-winner-predictor-3-copy"}
	duplicate.Status = mlv1.ModelVersionStatus{}
	g.Expect(c.Create(ctx, orphan)).To(Succeed())
	g.Expect(c.Create(ctx, duplicate)).To(Succeed())
	g.Eventually(condition(ctx, c, orphan, mlv1.ConditionReconciling)).Should(Equal(metav1.ConditionTrue))
	g.Eventually(condition(ctx, c, duplicate, mlv1.ConditionStalled)).Should(Equal(metav1.ConditionTrue))
	save(t, c, orphan, "modelversion-waiting-for-model")
	save(t, c, duplicate, "modelversion-duplicate")
}

// startOperator starts envtest with Podium's CRDs and the operator, both stopped when the test
// ends, and returns a client.
func startOperator(t *testing.T) client.Client {
	t.Helper()
	env := testenv.Environment()
	t.Cleanup(func() { _ = env.Stop() }) // also after a start that failed halfway
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest (is KUBEBUILDER_ASSETS set?): %v", err)
	}

	scheme := testenv.Scheme()
	stop, err := testenv.Operator{}.Start(cfg, scheme)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readSample reads config/samples/NAME into obj, in the fixtures' namespace.
func readSample(t *testing.T, name string, obj client.Object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	obj.SetNamespace(ns)
}

func stage(ctx context.Context, c client.Client, v *mlv1.ModelVersion) func(Gomega) mlv1.Stage {
	return func(g Gomega) mlv1.Stage {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(v), v)).To(Succeed())
		return v.Status.Stage
	}
}

// condition returns a poll of the status of the condition of type t of obj.
func condition(ctx context.Context, c client.Client, obj client.Object, t string) func(Gomega) metav1.ConditionStatus {
	return func(g Gomega) metav1.ConditionStatus {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		var conditions []metav1.Condition
		switch o := obj.(type) {
		case *mlv1.ModelVersion:
			conditions = o.Status.Conditions
		case *mlv1.RegisteredModel:
			conditions = o.Status.Conditions
		}
		if cond := meta.FindStatusCondition(conditions, t); cond != nil {
			return cond.Status
		}
		return ""
	}
}

// save writes obj as the API server holds it to testdata/NAME.json, without the metadata that
// only identifies this run (uid, resourceVersion, managedFields, timestamps).
func save(t *testing.T, c client.Client, obj client.Object, name string) {
	t.Helper()
	gvk, err := c.GroupVersionKindFor(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(obj), u); err != nil {
		t.Fatal(err)
	}
	u.Object["metadata"] = map[string]any{
		"name": u.GetName(), "namespace": u.GetNamespace(), "generation": u.GetGeneration(),
	}
	data, err := json.MarshalIndent(u.Object, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", name+".json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
