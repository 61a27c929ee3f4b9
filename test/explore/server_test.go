package explore

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/controller"
)

// ns is the one namespace every schedule works in.
const ns = "explore"

// scheme holds Podium's types alone: the fake client builds a REST mapper from the whole scheme
// on every write, so a small scheme is what makes the explorer fast.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := mlv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// kind is one of the kinds the reconciler reads or writes; each has its own watch log and each
// cache its own cursor into it, as informers have. StageRecords are never cached: the reconciler
// creates them and lists them from the API server.
type kind int

const (
	models kind = iota
	versions
	records
	deployments
	services
	routes
	kinds
)

// cachedKinds are the kinds a manager's cache holds in a schedule without serving, and
// servingKinds those it holds with serving too.
var (
	cachedKinds  = []kind{models, versions}
	servingKinds = []kind{models, versions, deployments, services}
)

func (k kind) String() string {
	return [...]string{"RegisteredModel", "ModelVersion", "StageRecord", "Deployment", "Service", "HTTPRoute"}[k]
}

// served says whether the explorer's server keeps the kind itself, rather than the fake client.
// HTTPRoutes are never cached: the reconciler reads them from the API server.
func (k kind) served() bool { return k == deployments || k == services || k == routes }

func resource(k kind) schema.GroupResource {
	switch k {
	case deployments:
		return schema.GroupResource{Group: "apps", Resource: "deployments"}
	case services:
		return schema.GroupResource{Resource: "services"}
	case routes:
		return schema.GroupResource{Group: gatewayv1.GroupName, Resource: "httproutes"}
	}
	return schema.GroupResource{Group: mlv1.GroupVersion.Group, Resource: strings.ToLower(k.String()) + "s"}
}

func kindOf(o runtime.Object) (kind, bool) {
	switch o.(type) {
	case *mlv1.RegisteredModel, *mlv1.RegisteredModelList:
		return models, true
	case *mlv1.ModelVersion, *mlv1.ModelVersionList:
		return versions, true
	case *mlv1.StageRecord, *mlv1.StageRecordList:
		return records, true
	case *appsv1.Deployment:
		return deployments, true
	case *corev1.Service:
		return services, true
	case *gatewayv1.HTTPRoute:
		return routes, true
	}
	return 0, false
}

func newObject(k kind) client.Object {
	switch k {
	case models:
		return &mlv1.RegisteredModel{}
	case versions:
		return &mlv1.ModelVersion{}
	case deployments:
		return &appsv1.Deployment{}
	case services:
		return &corev1.Service{}
	case routes:
		return &gatewayv1.HTTPRoute{}
	}
	return &mlv1.StageRecord{}
}

// event is one entry of a watch log: an object's state after a successful write, or its
// deletion (obj nil).
type event struct {
	key client.ObjectKey
	obj client.Object
}

// server is the API server: controller-runtime's fake client, which enforces the resourceVersion
// precondition of a patch that carries one, plus what the fake leaves out (generation, UID,
// creation time) and a watch log per kind. Objects in the logs and in live are never mutated.
type server struct {
	fake client.WithWatch
	w    *world
	logs [kinds][]event
	live [kinds]map[client.ObjectKey]client.Object
	uids int
	// epochs counts, per model name, the creations and deletions of the model.
	epochs map[string]int
	// deletedWithHistory are the models that had history when they went, as they were last.
	deletedWithHistory []*mlv1.RegisteredModel
	// deletedProduction are the versions deleted while they were their model's Production version
	// and carried the operator's finalizer.
	deletedProduction []deletedVersion
	// store holds the Deployments and Services, which the server keeps itself (serving.go):
	// the fake client would need their whole API groups in its scheme.
	store [kinds]map[client.ObjectKey]client.Object
	// rv counts the writes of the store; rolled is, per Deployment, when its spec last changed,
	// and templateGen the generation at which its pod template last changed.
	rv          int
	rolled      map[client.ObjectKey]time.Time
	templateGen map[client.ObjectKey]int64
}

func newServer(w *world) *server {
	s := &server{w: w, epochs: map[string]int{}, rolled: map[client.ObjectKey]time.Time{},
		templateGen: map[client.ObjectKey]int64{}}
	// The plain object tracker: the default one tracks managedFields, which nothing here reads
	// and which costs more than the rest of a write.
	s.fake = fake.NewClientBuilder().
		WithScheme(scheme).
		WithObjectTracker(testing.NewObjectTracker(scheme, serializer.NewCodecFactory(scheme).UniversalDecoder())).
		WithGlobalResourceVersionCounter().
		WithStatusSubresource(&mlv1.RegisteredModel{}, &mlv1.ModelVersion{}).
		WithIndex(&mlv1.ModelVersion{}, controller.VersionModelIndex, func(o client.Object) []string {
			return []string{o.(*mlv1.ModelVersion).Spec.RegisteredModel}
		}).
		Build()
	for k := range kinds {
		s.live[k] = map[client.ObjectKey]client.Object{}
		s.store[k] = map[client.ObjectKey]client.Object{}
	}
	return s
}

// read is an object as the server has it.
func (s *server) read(k kind, key client.ObjectKey) (client.Object, error) {
	if k.served() {
		o, ok := s.store[k][key]
		if !ok {
			return nil, apierrors.NewNotFound(resource(k), key.Name)
		}
		return o, nil
	}
	obj := newObject(k)
	return obj, s.fake.Get(context.Background(), key, obj)
}

// record appends the object's state on the server to its kind's watch log after a successful
// write, and checks the invariants against the write.
func (s *server) record(k kind, key client.ObjectKey) {
	obj, err := s.read(k, key)
	prev := s.live[k][key]
	switch {
	case apierrors.IsNotFound(err):
		obj = nil
		delete(s.live[k], key)
	case err != nil:
		panic(fmt.Sprintf("reading back %s %s: %v", k, key, err))
	default:
		s.live[k][key] = obj
	}
	if k == models && (prev == nil) != (obj == nil) {
		s.epochs[key.Name]++
	}
	if m, ok := prev.(*mlv1.RegisteredModel); ok && obj == nil && len(m.Status.History) > 0 {
		s.deletedWithHistory = append(s.deletedWithHistory, m)
	}
	s.logs[k] = append(s.logs[k], event{key: key, obj: obj})
	s.w.wrote(k, prev, obj)
}

// deletedVersion is a Production version deleted, marked by by ("" when not marked).
type deletedVersion struct {
	name, uid, model, modelUID, by string
}

// model returns the model as the server has it, nil when it does not exist.
func (s *server) model(name string) *mlv1.RegisteredModel {
	o, _ := s.live[models][client.ObjectKey{Namespace: ns, Name: name}].(*mlv1.RegisteredModel)
	return o
}

func (s *server) version(name string) *mlv1.ModelVersion {
	o, _ := s.live[versions][client.ObjectKey{Namespace: ns, Name: name}].(*mlv1.ModelVersion)
	return o
}

// versionsOf returns a model's versions as the server has them, by number then name.
func (s *server) versionsOf(model string) []*mlv1.ModelVersion {
	var out []*mlv1.ModelVersion
	for _, o := range s.live[versions] {
		if v := o.(*mlv1.ModelVersion); v.Spec.RegisteredModel == model {
			out = append(out, v)
		}
	}
	sortVersions(out)
	return out
}

func sortVersions(vs []*mlv1.ModelVersion) {
	slices.SortFunc(vs, func(a, b *mlv1.ModelVersion) int {
		if a.Spec.Version != b.Spec.Version {
			return int(a.Spec.Version - b.Spec.Version)
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// create stores a new object as a user creates it: generation 1, a UID and a creation time,
// and no status (the status subresource ignores it on create).
func (s *server) create(obj client.Object) error {
	k, _ := kindOf(obj)
	s.uids++
	obj.SetUID(types.UID(fmt.Sprintf("uid-%d", s.uids)))
	obj.SetGeneration(1)
	obj.SetCreationTimestamp(metav1.NewTime(s.w.now()))
	if err := s.fake.Create(context.Background(), obj); err != nil {
		return err
	}
	s.record(k, client.ObjectKeyFromObject(obj))
	return nil
}

// updateSpec changes an object's spec as `kubectl edit` does: read, change, update with the
// read resourceVersion; the generation moves when the spec changes.
func (s *server) updateSpec(k kind, name string, change func(client.Object)) error {
	key := client.ObjectKey{Namespace: ns, Name: name}
	obj := newObject(k)
	if err := s.fake.Get(context.Background(), key, obj); err != nil {
		return err
	}
	before := specOf(obj)
	change(obj)
	if !equality.Semantic.DeepEqual(before, specOf(obj)) {
		obj.SetGeneration(obj.GetGeneration() + 1)
	}
	if err := s.fake.Update(context.Background(), obj); err != nil {
		return err
	}
	s.record(k, key)
	return nil
}

func (s *server) delete(k kind, name string) error {
	obj := newObject(k)
	obj.SetNamespace(ns)
	obj.SetName(name)
	if err := s.fake.Delete(context.Background(), obj); err != nil {
		return err
	}
	s.record(k, client.ObjectKeyFromObject(obj))
	return nil
}

func specOf(o client.Object) any {
	switch o := o.(type) {
	case *mlv1.RegisteredModel:
		return o.Spec
	case *mlv1.ModelVersion:
		return o.Spec
	}
	return nil
}

// cache is one manager's informer cache: per kind, a cursor into the kind's watch log and the
// state that the log's prefix gives. It never moves backwards.
type cache struct {
	srv    *server
	cursor [kinds]int
	state  [kinds]map[client.ObjectKey]client.Object
	// fresh makes every read see the server as it is (a cache that never lags).
	fresh bool
}

// newCache is a cold cache: an informer's initial LIST, at the current end of the logs.
func newCache(s *server) *cache {
	c := &cache{srv: s}
	for k := range kinds {
		c.cursor[k] = len(s.logs[k])
		c.state[k] = maps.Clone(s.live[k])
	}
	return c
}

// advance applies up to n more events of kind k and returns how many it applied.
func (c *cache) advance(k kind, n int) int {
	applied := 0
	for ; applied < n && c.cursor[k] < len(c.srv.logs[k]); applied++ {
		e := c.srv.logs[k][c.cursor[k]]
		if e.obj == nil {
			delete(c.state[k], e.key)
		} else {
			c.state[k][e.key] = e.obj
		}
		c.cursor[k]++
	}
	return applied
}

func (c *cache) lag(k kind) int { return len(c.srv.logs[k]) - c.cursor[k] }

func (c *cache) catchUp() {
	for k := range kinds {
		c.advance(k, c.lag(k))
	}
}

func (c *cache) get(key client.ObjectKey, obj client.Object) error {
	k, ok := kindOf(obj)
	if !ok {
		return fmt.Errorf("explore: the cache holds no %T", obj)
	}
	if c.fresh {
		c.advance(k, c.lag(k))
	}
	src, ok := c.state[k][key]
	if !ok {
		return apierrors.NewNotFound(resource(k), key.Name)
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(src.DeepCopyObject()).Elem())
	return nil
}

func (c *cache) list(list client.ObjectList, opts ...client.ListOption) error {
	k, ok := kindOf(list)
	if !ok {
		return fmt.Errorf("explore: the cache holds no %T", list)
	}
	if c.fresh {
		c.advance(k, c.lag(k))
	}
	lo := &client.ListOptions{}
	lo.ApplyOptions(opts)
	keys := slices.SortedFunc(maps.Keys(c.state[k]), func(a, b client.ObjectKey) int {
		return strings.Compare(a.String(), b.String())
	})
	matches := func(o client.Object, fieldSet map[string]string) bool {
		if lo.Namespace != "" && o.GetNamespace() != lo.Namespace {
			return false
		}
		if lo.LabelSelector != nil && !lo.LabelSelector.Matches(labels.Set(o.GetLabels())) {
			return false
		}
		if lo.FieldSelector != nil && !lo.FieldSelector.Empty() {
			for _, r := range lo.FieldSelector.Requirements() {
				if v, ok := fieldSet[r.Field]; !ok || v != r.Value {
					return false
				}
			}
		}
		return true
	}
	switch l := list.(type) {
	case *mlv1.RegisteredModelList:
		l.Items = nil
		for _, key := range keys {
			m := c.state[k][key].(*mlv1.RegisteredModel)
			if matches(m, map[string]string{"metadata.name": m.Name, "metadata.namespace": m.Namespace}) {
				l.Items = append(l.Items, *m.DeepCopy())
			}
		}
	case *mlv1.ModelVersionList:
		l.Items = nil
		for _, key := range keys {
			v := c.state[k][key].(*mlv1.ModelVersion)
			if matches(v, map[string]string{controller.VersionModelIndex: v.Spec.RegisteredModel,
				"metadata.name": v.Name, "metadata.namespace": v.Namespace}) {
				l.Items = append(l.Items, *v.DeepCopy())
			}
		}
	}
	return nil
}

// clock is the schedules' time: it moves one second per step, so that runs are reproducible.
type clock struct{ t time.Time }

func (c *clock) tick() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}
