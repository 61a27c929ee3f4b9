package main

import (
	"flag"
	"maps"
	"slices"
	"testing"
)

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
			opts := &managerOptions{}
			fs := flag.NewFlagSet("manager", flag.ContinueOnError)
			opts.bindFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got := opts.cacheOptions().DefaultNamespaces
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
