package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

func version(uid, rv string) *mlv1.ModelVersion {
	return &mlv1.ModelVersion{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), ResourceVersion: rv}}
}

func TestPendingWrites(t *testing.T) {
	model := types.NamespacedName{Namespace: "ns", Name: "m"}
	var w pendingWrites

	w.wrote(model, version("a", "11"), "10")
	if !w.cacheBehind(model, []client.Object{version("a", "10")}) {
		t.Fatal("a cache that still shows the object as it was before the write is behind")
	}
	if w.cacheBehind(model, []client.Object{version("a", "11")}) {
		t.Fatal("a cache that shows the write is not behind")
	}
	if w.cacheBehind(model, []client.Object{version("a", "10")}) {
		t.Fatal("a write the cache has seen is forgotten")
	}

	// A write that changed nothing keeps its resourceVersion and sends no watch event: waiting
	// for one would stop the model for good.
	w.wrote(model, version("b", "20"), "20")
	if w.cacheBehind(model, []client.Object{version("b", "20")}) {
		t.Fatal("a write that changed nothing must not be waited for")
	}

	// Two writes of one object in one reconcile (its status, then its finalizers): a cache that
	// shows the first and not the second is behind too.
	w.wrote(model, version("d", "41"), "40")
	w.wrote(model, version("d", "42"), "41")
	if !w.cacheBehind(model, []client.Object{version("d", "41")}) {
		t.Fatal("a cache that shows only the first of two writes is behind")
	}
	if w.cacheBehind(model, []client.Object{version("d", "42")}) {
		t.Fatal("a cache that shows both writes is not behind")
	}

	// An object deleted since the write is forgotten, not waited for.
	w.wrote(model, version("c", "31"), "30")
	if w.cacheBehind(model, nil) || len(w.byModel) != 0 {
		t.Fatalf("a write to an object that is gone is still pending: %v", w.byModel)
	}
}
