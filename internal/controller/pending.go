package controller

import (
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// pendingWrites remembers, per model, the resourceVersions each object had before this manager's
// writes of it (a reconcile may write a version's status and then its finalizers). While the cache still shows an object at that resourceVersion, the cache has
// not seen every write yet, and the write's own watch event will bring the model back with a cache
// that has: a reconcile before that could only read the API server to find its own write there.
// resourceVersions are compared for equality only, as the API conventions allow. This saves
// reads; it is not what keeps two versions from being Production (see record).
type pendingWrites struct {
	mu      sync.Mutex
	byModel map[types.NamespacedName]map[types.UID][]string
}

// wrote records that obj, of model, was written when its resourceVersion was before; obj holds
// what the API server answered. A write that changed nothing leaves the resourceVersion as it was
// and brings no watch event: it is not recorded, or the model would wait for an event that never
// comes.
func (w *pendingWrites) wrote(model types.NamespacedName, obj client.Object, before string) {
	if obj.GetResourceVersion() == before {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byModel == nil {
		w.byModel = map[types.NamespacedName]map[types.UID][]string{}
	}
	if w.byModel[model] == nil {
		w.byModel[model] = map[types.UID][]string{}
	}
	w.byModel[model][obj.GetUID()] = append(w.byModel[model][obj.GetUID()], before)
}

// cacheBehind says whether the cached objects of model still show one of this manager's writes
// undone; it forgets the writes the cache has caught up with, or whose objects are gone.
func (w *pendingWrites) cacheBehind(model types.NamespacedName, cached []client.Object) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	pending := w.byModel[model]
	behind := false
	for uid, befores := range pending {
		seen := false
		for _, obj := range cached {
			if obj.GetUID() == uid && slices.Contains(befores, obj.GetResourceVersion()) {
				seen = true
			}
		}
		if seen {
			behind = true
		} else {
			delete(pending, uid)
		}
	}
	if len(pending) == 0 {
		delete(w.byModel, model)
	}
	return behind
}
