package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// deletedModel is a reconciler on a fake API server that holds model churn, with history, marked
// for deletion by alice and deleted, and its Production version 3; the manager wrote entry 1's
// record.
func deletedModel(t *testing.T, funcs interceptor.Funcs) (*RegisteredModelReconciler, client.Client, *mlv1.RegisteredModel, *mlv1.ModelVersion) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := mlv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	production := int64(3)
	entered := metav1.NewTime(time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC))
	model := &mlv1.RegisteredModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "churn", UID: "uid-model",
			Finalizers: []string{mlv1.FinalizerStageRecords},
			Annotations: map[string]string{
				mlv1.AnnotationDeleteRequested: "1", mlv1.AnnotationDeleteRequestedBy: "alice"}},
		Status: mlv1.RegisteredModelStatus{
			ProductionVersion: &production, ProductionVersionUID: "uid-3", RecordedSequence: 1,
			History: []mlv1.HistoryEntry{{Sequence: 1, Version: 3, VersionUID: "uid-3", To: mlv1.StageProduction,
				Reason: mlv1.ReasonGatesPassed, Time: entered, By: mlv1.ByOperator}},
		},
	}
	version := &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "churn-3", UID: "uid-3"},
		Spec: mlv1.ModelVersionSpec{RegisteredModel: "churn", Version: 3,
			Artifact: mlv1.Artifact{URI: "s3://models/churn/3/"}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(model, version).
		WithStatusSubresource(&mlv1.RegisteredModel{}, &mlv1.ModelVersion{}).
		WithIndex(&mlv1.ModelVersion{}, VersionModelIndex, func(o client.Object) []string {
			return []string{o.(*mlv1.ModelVersion).Spec.RegisteredModel}
		}).WithInterceptorFuncs(funcs).Build()
	r := &RegisteredModelReconciler{Client: c, APIReader: c}
	r.records.Store(model.UID, int64(1))
	if err := c.Delete(context.Background(), model); err != nil {
		t.Fatal(err)
	}
	return r, c, model, version
}

func gone(t *testing.T, c client.Client, model *mlv1.RegisteredModel) {
	t.Helper()
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(model), &mlv1.RegisteredModel{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the model is still there once its deletion is handled: %v", err)
	}
}

// A deleted model's last record is its deletion, by whoever marked it; and the manager forgets
// the model's records once the deletion is recorded, so that its memory does not grow with
// every model ever deleted.
func TestRecordingADeletionForgetsTheModel(t *testing.T) {
	ctx := context.Background()
	r, c, model, version := deletedModel(t, interceptor.Funcs{})
	if err := r.recordDeletion(ctx, client.ObjectKeyFromObject(model)); err != nil {
		t.Fatal(err)
	}
	gone(t, c, model)
	if _, ok := r.records.Load(model.UID); ok {
		t.Error("the manager still holds the records of a model whose deletion it recorded")
	}
	var recs mlv1.StageRecordList
	if err := c.List(ctx, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs.Items) != 1 {
		t.Fatalf("%d StageRecords, want the deletion's alone (entry 1 was recorded before): %+v", len(recs.Items), recs.Items)
	}
	got := recs.Items[0]
	if tr := got.Transition; tr.Sequence != 2 || tr.Reason != mlv1.ReasonModelDeleted || tr.By != "alice" ||
		tr.Version != 3 || tr.From != mlv1.StageProduction || tr.To != mlv1.StageNone {
		t.Errorf("the deletion's record: %+v", tr)
	}
	if got.Version.ArtifactURI != version.Spec.Artifact.URI || got.Version.Name != version.Name {
		t.Errorf("the deletion's record names version %+v", got.Version)
	}

	if err := r.recordDeletion(ctx, client.ObjectKeyFromObject(model)); err != nil {
		t.Errorf("recording the deletion of a model that is gone: %v", err)
	}
}

// Deleting the CRDs deletes every model while the StageRecord CRD, terminating too, refuses new
// records: the models go without one, rather than wait Terminating for ever. Any other failure
// to write the record keeps the model, to try again.
func TestADeletionWhoseRecordCannotBeWritten(t *testing.T) {
	records := schema.GroupResource{Group: mlv1.GroupVersion.Group, Resource: "stagerecords"}
	refuse := func(err error) interceptor.Funcs {
		return interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*mlv1.StageRecord); ok {
				return err
			}
			return c.Create(ctx, obj, opts...)
		}}
	}
	t.Run("the StageRecord CRD is being deleted", func(t *testing.T) {
		// The API server's own error (apiextensions-apiserver's forbidCreateAdmission).
		r, c, model, _ := deletedModel(t, refuse(apierrors.NewForbidden(records, "churn-uid-mode-2",
			errors.New("create not allowed while custom resource definition is terminating"))))
		if err := r.recordDeletion(context.Background(), client.ObjectKeyFromObject(model)); err != nil {
			t.Fatal(err)
		}
		gone(t, c, model)
	})
	for name, err := range map[string]error{
		"the API server fails": apierrors.NewServiceUnavailable("etcd is down"),
		"RBAC refuses":         apierrors.NewForbidden(records, "churn-uid-mode-2", errors.New("cannot create")),
	} {
		t.Run(name, func(t *testing.T) {
			r, c, model, _ := deletedModel(t, refuse(err))
			if err := r.recordDeletion(context.Background(), client.ObjectKeyFromObject(model)); err == nil {
				t.Fatal("the deletion was handled although its record was not written")
			}
			m := &mlv1.RegisteredModel{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(model), m); err != nil {
				t.Fatal(err)
			}
			if len(m.Finalizers) != 1 {
				t.Errorf("the model's finalizers are %v, want %s kept until the record is written", m.Finalizers,
					mlv1.FinalizerStageRecords)
			}
		})
	}
}
