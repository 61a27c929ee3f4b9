package controller_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// productionWatcher follows every ModelVersion of a namespace through a watch, which delivers
// each change in the order the API server made it, and records any instant at which two versions
// of one model were Production.
type productionWatcher struct {
	mu         sync.Mutex
	stages     map[string]mlv1.ModelVersion
	violations []string
	events     int
}

func watchProduction(ctx context.Context, ns string) *productionWatcher {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: testScheme})
	Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &mlv1.ModelVersionList{}, client.InNamespace(ns))
	Expect(err).NotTo(HaveOccurred())
	pw := &productionWatcher{stages: map[string]mlv1.ModelVersion{}}
	go func() {
		defer GinkgoRecover()
		for ev := range w.ResultChan() {
			v, ok := ev.Object.(*mlv1.ModelVersion)
			if !ok {
				continue
			}
			pw.observe(ev.Type, v)
		}
	}()
	DeferCleanup(w.Stop)
	return pw
}

func (pw *productionWatcher) observe(t watch.EventType, v *mlv1.ModelVersion) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.events++
	if t == watch.Deleted {
		delete(pw.stages, v.Name)
		return
	}
	pw.stages[v.Name] = *v
	byModel := map[string][]string{}
	for name, mv := range pw.stages {
		if mv.Status.Stage == mlv1.StageProduction {
			byModel[mv.Spec.RegisteredModel] = append(byModel[mv.Spec.RegisteredModel], name)
		}
	}
	for model, names := range byModel {
		if len(names) > 1 {
			pw.violations = append(pw.violations, fmt.Sprintf("%s had %d Production versions at resourceVersion %s: %v",
				model, len(names), v.ResourceVersion, names))
		}
	}
}

func (pw *productionWatcher) report() (violations []string, events int) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return append([]string(nil), pw.violations...), pw.events
}

var _ = Describe("The one-Production invariant", func() {
	It("holds at every instant during concurrent random registrations and requests", func(ctx context.Context) {
		ns := newNamespace(ctx)
		pw := watchProduction(ctx, ns)
		models := []string{"alpha", "beta"}
		for _, m := range models {
			model := seedModel(ns)
			model.Name = m
			create(ctx, model)
		}

		const workers, opsPerWorker = 4, 25
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				defer GinkgoRecover()
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				for op := range opsPerWorker {
					model := models[rng.IntN(len(models))]
					if op%3 == 0 {
						n := int64(w*opsPerWorker + op + 1)
						v := seedVersion(ns, n, fmt.Sprintf("0.%d", 80+rng.IntN(20)))
						v.Name, v.Spec.RegisteredModel = fmt.Sprintf("%s-%d", model, n), model
						Expect(k8sClient.Create(ctx, v)).To(Succeed())
						continue
					}
					var list mlv1.ModelVersionList
					Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
					if len(list.Items) == 0 {
						continue
					}
					target := list.Items[rng.IntN(len(list.Items))]
					stage := []mlv1.Stage{mlv1.StageProduction, mlv1.StageProduction, mlv1.StageArchived, mlv1.StageStaging, ""}[rng.IntN(5)]
					requestStage(ctx, ns, target.Name, stage)
				}
			})
		}
		wg.Wait()

		By("waiting for the operator to converge")
		waitConverged(ctx, ns)
		for _, m := range models {
			model := getModel(ctx, ns, m)
			var list mlv1.ModelVersionList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			var production []int64
			for _, v := range list.Items {
				if v.Spec.RegisteredModel == m && v.Status.Stage == mlv1.StageProduction {
					production = append(production, v.Spec.Version)
				}
			}
			if model.Status.ProductionVersion == nil {
				Expect(production).To(BeEmpty())
			} else {
				Expect(production).To(Equal([]int64{*model.Status.ProductionVersion}), "model %s", m)
			}
		}
		violations, events := pw.report()
		Expect(events).To(BeNumerically(">", 100), "the watch saw too few changes to prove anything")
		Expect(violations).To(BeEmpty())
	})
})
