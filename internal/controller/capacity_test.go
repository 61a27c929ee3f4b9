package controller_test

import (
	"context"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// capacityWatcher follows the prediction Deployments of a namespace, stable and canary, through a
// watch, and records any instant at which fewer pods were available in all than floor, once they
// first reached it: what a canary's steps, its abort and its end must never cause. The envtest
// specs play the Deployment controller (playDeployments), so a Deployment's available pods are
// what its status last said.
type capacityWatcher struct {
	mu         sync.Mutex
	floor      int32
	available  map[string]int32
	reached    bool
	violations []string
}

func watchCapacity(ctx context.Context, ns string, floor int32) *capacityWatcher {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: testScheme})
	Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &appsv1.DeploymentList{}, client.InNamespace(ns))
	Expect(err).NotTo(HaveOccurred())
	cw := &capacityWatcher{floor: floor, available: map[string]int32{}}
	go func() {
		defer GinkgoRecover()
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				cw.observe(ev.Type, d)
			}
		}
	}()
	DeferCleanup(w.Stop)
	return cw
}

func (cw *capacityWatcher) observe(t watch.EventType, d *appsv1.Deployment) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if d.Name != predictor && d.Name != canaryDeployment {
		return // the staging Deployment serves no Production traffic
	}
	if t == watch.Deleted {
		delete(cw.available, d.Name)
	} else {
		cw.available[d.Name] = d.Status.AvailableReplicas
	}
	var total int32
	for _, n := range cw.available {
		total += n
	}
	switch {
	case total >= cw.floor:
		cw.reached = true
	case cw.reached:
		cw.violations = append(cw.violations, fmt.Sprintf("%d pods available at resourceVersion %s of %s (%v), fewer than %d",
			total, d.ResourceVersion, d.Name, cw.available, cw.floor))
	}
}

func (cw *capacityWatcher) report() []string {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return append([]string(nil), cw.violations...)
}
