package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// seed is the seed system's model.
const seed = "battle-winner-predictor"

// newNamespace creates a namespace of its own for one spec.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + rand.String(8)}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// seedModel is the seed system's model: promote when test_accuracy >= 0.85.
func seedModel(ns string) *mlv1.RegisteredModel {
	return &mlv1.RegisteredModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: seed},
		Spec: mlv1.RegisteredModelSpec{
			Description: "Predicts the winner of a battle",
			Promotion: mlv1.Promotion{
				Mode:  mlv1.PromotionAutomatic,
				Gates: []mlv1.Gate{{Metric: "test_accuracy", Min: new(mlv1.Number("0.85"))}},
			},
		},
	}
}

// seedVersion is version n of the seed model with the given test accuracy.
func seedVersion(ns string, n int64, accuracy string) *mlv1.ModelVersion {
	return &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: versionName(seed, n)},
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: seed,
			Version:         n,
			Description:     "RandomForest - Accuracy: " + accuracy,
			Artifact:        mlv1.Artifact{URI: fmt.Sprintf("s3://ml-artifacts/battle-winner/%d/", n)},
			Metrics:         map[string]mlv1.Number{"test_accuracy": mlv1.Number(accuracy), "overfitting": "0.0233"},
		},
	}
}

func create(ctx context.Context, objs ...client.Object) {
	for _, o := range objs {
		ExpectWithOffset(1, k8sClient.Create(ctx, o)).To(Succeed())
	}
}

// registerSeed registers version n of the seed model with the plugin, as the seed's training
// script did after each run.
func registerSeed(ctx context.Context, ns string, n int64, accuracy string) {
	succeed(ctx, ns, "register", seed, "--version", fmt.Sprint(n),
		"--uri", fmt.Sprintf("s3://ml-artifacts/battle-winner/%d/", n),
		"--metric", "test_accuracy="+accuracy, "--metric", "overfitting=0.0233",
		"--description", "RandomForest - Accuracy: "+accuracy)
}

// stages renders the stage of every version of the seed model, in order: "2=None 3=Archived 4=Production".
func stages(ctx context.Context, ns string) string {
	var list mlv1.ModelVersionList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	parts := make([]string, 0, len(list.Items))
	for _, v := range list.Items {
		parts = append(parts, fmt.Sprintf("%d=%s", v.Spec.Version, v.Status.Stage))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func getVersion(ctx context.Context, ns, name string) *mlv1.ModelVersion {
	v := &mlv1.ModelVersion{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, v)).To(Succeed())
	return v
}

func listVersions(ctx context.Context, ns string) []mlv1.ModelVersion {
	var list mlv1.ModelVersionList
	ExpectWithOffset(1, k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// seedStory runs the operator on ns and registers the seed's versions one after the other, as
// its training runs did: v2 fails the gate, v3 becomes Production, v4 replaces it. It returns the
// function that stops the operator.
func seedStory(ctx context.Context, ns string) (stopOperator func()) {
	GinkgoHelper()
	create(ctx, seedModel(ns))
	stopOperator = startOperator(ns)
	registerSeed(ctx, ns, 2, "0.8203")
	registerSeed(ctx, ns, 3, "0.8512")
	Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Production"))
	registerSeed(ctx, ns, 4, "0.8723")
	Eventually(stages).WithArguments(ctx, ns).Should(Equal("2=None 3=Archived 4=Production"))
	return stopOperator
}
