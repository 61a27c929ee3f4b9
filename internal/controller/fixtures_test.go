package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// newNamespace creates a namespace of its own for one spec.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + rand.String(8)}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

type modelOption func(*mlv1.RegisteredModel)

// seedModel is the seed system's model: promote when test_accuracy >= 0.85.
func seedModel(ns string, opts ...modelOption) *mlv1.RegisteredModel {
	m := &mlv1.RegisteredModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "battle-winner-predictor"},
		Spec: mlv1.RegisteredModelSpec{
			Description: "Predicts the winner of a battle",
			Promotion: mlv1.Promotion{
				Mode:  mlv1.PromotionAutomatic,
				Gates: []mlv1.Gate{{Metric: "test_accuracy", Min: numPtr("0.85")}},
			},
		},
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

func manual(m *mlv1.RegisteredModel) { m.Spec.Promotion.Mode = mlv1.PromotionManual }

func numPtr(s string) *mlv1.Number { n := mlv1.Number(s); return &n }

type versionOption func(*mlv1.ModelVersion)

// seedVersion is version n of the seed model with the given test accuracy.
func seedVersion(ns string, n int64, accuracy string, opts ...versionOption) *mlv1.ModelVersion {
	v := &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("battle-winner-predictor-%d", n)},
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: "battle-winner-predictor",
			Version:         n,
			Description:     "RandomForest - Accuracy: " + accuracy,
			Artifact:        mlv1.Artifact{URI: fmt.Sprintf("s3://ml-artifacts/battle-winner/%d/", n)},
			Metrics:         map[string]mlv1.Number{"test_accuracy": mlv1.Number(accuracy), "overfitting": "0.0233"},
		},
	}
	for _, o := range opts {
		o(v)
	}
	return v
}

func named(name string) versionOption { return func(v *mlv1.ModelVersion) { v.Name = name } }

func create(ctx context.Context, objs ...client.Object) {
	for _, o := range objs {
		ExpectWithOffset(1, k8sClient.Create(ctx, o)).To(Succeed())
	}
}

// requestStage patches spec.stage as `kubectl patch --type=merge` does; "" clears it.
func requestStage(ctx context.Context, ns, name string, stage mlv1.Stage) {
	v := &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	value := "null"
	if stage != "" {
		value = fmt.Sprintf("%q", stage)
	}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"stage":%s}}`, value))
	ExpectWithOffset(1, k8sClient.Patch(ctx, v, patch)).To(Succeed())
}

// stages renders every version's stage in a namespace, sorted: "battle-winner-predictor-2=None ...".
func stages(ctx context.Context, ns string) string {
	var list mlv1.ModelVersionList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	parts := make([]string, 0, len(list.Items))
	for _, v := range list.Items {
		parts = append(parts, fmt.Sprintf("%s=%s", strings.TrimPrefix(v.Name, "battle-winner-predictor-"), v.Status.Stage))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func getModel(ctx context.Context, ns, name string) *mlv1.RegisteredModel {
	m := &mlv1.RegisteredModel{}
	ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, m)).To(Succeed())
	return m
}

func getVersion(ctx context.Context, ns, name string) *mlv1.ModelVersion {
	v := &mlv1.ModelVersion{}
	ExpectWithOffset(1, k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, v)).To(Succeed())
	return v
}

// productionOf returns the model's status.productionVersion, 0 when it has none.
func productionOf(ctx context.Context, ns string) int64 {
	m := getModel(ctx, ns, "battle-winner-predictor")
	if m.Status.ProductionVersion == nil {
		return 0
	}
	return *m.Status.ProductionVersion
}
