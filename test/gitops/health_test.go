// Package gitops tests what GitOps tools read from Podium's objects: the Argo CD health script
// config/argocd/health.lua, run with gopher-lua as Argo CD runs it, and kstatus, which Flux and
// kubectl wait use. Both read statuses that the operator wrote: testdata/*.json, which
// 'go test ./test/gitops -update' (with KUBEBUILDER_ASSETS) rewrites from the operator on envtest.
package gitops

import (
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// healthCases are each fixture, or a fixture changed as named, with the health Argo CD must
// show and the status kstatus must compute.
var healthCases = []struct {
	name    string
	fixture string
	change  func(u *unstructured.Unstructured)
	health  string
	message string
	kstatus status.Status
}{
	{name: "a Production version", fixture: "modelversion-production",
		health: "Healthy", message: "Stage Production", kstatus: status.CurrentStatus},
	{name: "a version that fails its gates, which is decided", fixture: "modelversion-none",
		health: "Healthy", message: "Stage None", kstatus: status.CurrentStatus},
	{name: "a version waiting for its model", fixture: "modelversion-waiting-for-model",
		health: "Progressing",
		message: "RegisteredModel not-yet-created does not exist in namespace gitops; " +
			"the version is decided as soon as it is created",
		kstatus: status.InProgressStatus},
	{name: "a duplicate version", fixture: "modelversion-duplicate",
		health: "Degraded",
		message: "Another ModelVersion of battle-winner-predictor claims version 3; " +
			"neither can be promoted until one is deleted",
		kstatus: status.FailedStatus},
	{name: "a model with a Production version", fixture: "registeredmodel-ready",
		health: "Healthy", message: "Version 4 is Production", kstatus: status.CurrentStatus},
	{name: "a spec change the operator has not seen yet", fixture: "registeredmodel-ready",
		change: func(u *unstructured.Unstructured) { u.SetGeneration(u.GetGeneration() + 1) },
		health: "Progressing", message: "Waiting for the Podium operator to observe generation 2",
		kstatus: status.InProgressStatus},
	// kstatus takes an object without conditions for Current: it cannot tell that an operator
	// will write them. Argo CD waits for them.
	{name: "an object the operator has not written a status to", fixture: "modelversion-production",
		change: func(u *unstructured.Unstructured) { unstructured.RemoveNestedField(u.Object, "status") },
		health: "Progressing", message: "Waiting for the Podium operator", kstatus: status.CurrentStatus},
}

func TestArgoCDHealth(t *testing.T) {
	for _, tc := range healthCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := loadFixture(t, tc.fixture, tc.change)
			health, message := argoHealth(t, obj)
			if health != tc.health || message != tc.message {
				t.Errorf("health.lua = %s %q, want %s %q", health, message, tc.health, tc.message)
			}
		})
	}
}

func TestKstatus(t *testing.T) {
	for _, tc := range healthCases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := status.Compute(loadFixture(t, tc.fixture, tc.change))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.kstatus {
				t.Errorf("kstatus = %s (%s), want %s", res.Status, res.Message, tc.kstatus)
			}
		})
	}
}

// argoHealth runs config/argocd/health.lua as Argo CD does: the object as the global obj, the
// script's returned table read for status and message.
func argoHealth(t *testing.T, obj *unstructured.Unstructured) (health, message string) {
	t.Helper()
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj.Object))
	if err := L.DoFile(filepath.Join("..", "..", "config", "argocd", "health.lua")); err != nil {
		t.Fatalf("health.lua: %v", err)
	}
	result, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, want a table", L.Get(-1).Type())
	}
	return lua.LVAsString(result.RawGetString("status")), lua.LVAsString(result.RawGetString("message"))
}

// toLua converts a JSON value to Lua: objects and arrays to tables, numbers, strings and booleans
// to their Lua values.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}

// loadFixture reads testdata/NAME.json, an object as the operator left it, and applies change.
func loadFixture(t *testing.T, name string, change func(*unstructured.Unstructured)) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatalf("%v: rewrite the fixtures with 'go test ./test/gitops -update'", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatalf("testdata/%s.json: %v", name, err)
	}
	if change != nil {
		change(u)
	}
	return u
}
