package main

import (
	"flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/podium-dev/podium/internal/controller"
)

// parseFlags returns the manager's options after args, as main parses them.
func parseFlags(t *testing.T, args ...string) *managerOptions {
	t.Helper()
	opts := &managerOptions{}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	opts.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return opts
}

func TestWatchNamespacesRestrictTheCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // nil: every namespace
	}{
		{"no flag watches every namespace", nil, nil},
		{"an empty list watches every namespace", []string{"--watch-namespaces="}, nil},
		{"a list watches its namespaces", []string{"--watch-namespaces=ml, team-b,"}, []string{"ml", "team-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := parseFlags(t, tc.args...).operatorOptions().ManagerOptions(ctrl.Options{}).Cache
			if len(cache.ByObject) == 0 {
				t.Errorf("the cache has no per-kind options: Deployments and Services would all be cached")
			}
			got := cache.DefaultNamespaces
			if tc.want == nil {
				if got != nil {
					t.Fatalf("DefaultNamespaces = %v, want nil (all namespaces)", got)
				}
				return
			}
			if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, tc.want) {
				t.Fatalf("DefaultNamespaces = %v, want %v", keys, tc.want)
			}
		})
	}
}

// The test suites run controller.DefaultOptions (testenv): they must be what a manager without
// flags runs.
func TestFlagDefaultsAreTheOperatorDefaults(t *testing.T) {
	got := parseFlags(t).operatorOptions()
	if want := controller.DefaultOptions(); !reflect.DeepEqual(got, want) {
		t.Fatalf("without flags the operator runs with %+v, want controller.DefaultOptions() %+v", got, want)
	}
	n := got.ManagerOptions(ctrl.Options{}).Controller.MaxConcurrentReconciles
	if n != controller.DefaultMaxConcurrentReconciles {
		t.Errorf("MaxConcurrentReconciles = %d, want %d", n, controller.DefaultMaxConcurrentReconciles)
	}
}

func TestOperatorFlagsReachTheOperator(t *testing.T) {
	o := parseFlags(t, "--max-concurrent-reconciles=3", "--fetcher-image=registry.example/podium:1.2.3")
	got := o.operatorOptions()
	if got.FetcherImage != "registry.example/podium:1.2.3" {
		t.Errorf("FetcherImage = %q", got.FetcherImage)
	}
	if n := got.ManagerOptions(ctrl.Options{}).Controller.MaxConcurrentReconciles; n != 3 {
		t.Errorf("MaxConcurrentReconciles = %d, want 3", n)
	}
}

func TestInsecureRegistriesAreRepeatableLists(t *testing.T) {
	o := parseFlags(t, "--insecure-registry=registry.ml:5000, 10.0.0.7", "--insecure-registry", "zot.local")
	want := []string{"registry.ml:5000", "10.0.0.7", "zot.local"}
	if got := o.operatorOptions().InsecureRegistries; !slices.Equal(got, want) {
		t.Errorf("InsecureRegistries = %q, want %q", got, want)
	}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	(&managerOptions{}).bindFlags(fs)
	err := fs.Parse([]string{"--insecure-registry=http://registry.ml:5000"})
	if err == nil || !strings.Contains(err.Error(), "is not HOST[:PORT]") {
		t.Errorf("a URL as --insecure-registry: error %v, want one saying it is not HOST[:PORT]", err)
	}
}

func TestLeaderElectionFlags(t *testing.T) {
	podNamespace := filepath.Join(t.TempDir(), "namespace")
	if err := os.WriteFile(podNamespace, []byte("podium-system"), 0o600); err != nil {
		t.Fatal(err)
	}
	noPod := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct {
		name    string
		inPod   bool
		args    []string
		wantErr string // "": accepted
	}{
		{"the defaults in a pod are accepted", true, nil, ""},
		{"the defaults outside the cluster need a namespace", false, nil, "needs --leader-election-namespace"},
		{"a namespace outside the cluster is enough", false, []string{"--leader-election-namespace=podium-system"}, ""},
		{"without leader election nothing is checked", false,
			[]string{"--leader-elect=false", "--leader-election-renew-deadline=1m", "--leader-election-retry-period=0"}, ""},
		{"a renew deadline as long as the lease is refused", true,
			[]string{"--leader-election-renew-deadline=15s"}, "--leader-election-renew-deadline (15s) must be shorter"},
		{"a renew deadline longer than the lease is refused", true,
			[]string{"--leader-election-lease-duration=10s", "--leader-election-renew-deadline=12s"}, "must be shorter"},
		{"a zero retry period is refused", true,
			[]string{"--leader-election-retry-period=0"}, "--leader-election-retry-period must be positive"},
		{"a negative retry period is refused", true,
			[]string{"--leader-election-retry-period=-1s"}, "must be positive"},
		{"a renew deadline within the retry period's jitter is refused", true,
			[]string{"--leader-election-retry-period=5s", "--leader-election-renew-deadline=6s"}, "must be longer than 1.2 ×"},
		{"a renew deadline just beyond the jitter is accepted", true,
			[]string{"--leader-election-retry-period=5s", "--leader-election-renew-deadline=7s"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := noPod
			if tc.inPod {
				file = podNamespace
			}
			err := parseFlags(t, tc.args...).checkLeaderElection(file)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not say %q", err, tc.wantErr)
			}
		})
	}
}
