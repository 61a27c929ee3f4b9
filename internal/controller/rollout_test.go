package controller_test

import (
	"context"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/analysis"
	"github.com/podium-dev/podium/internal/serving"
	"github.com/podium-dev/podium/internal/testprometheus"
)

const canaryDeployment = "battle-winner-predictor-predictor-canary"

// errorRatio is what the prediction pods of each version would report to a real Prometheus: an
// exporter the test sets, scraped every second by a Prometheus the test starts.
type errorRatio struct {
	gauge   *prometheus.GaugeVec
	address string
}

func startAnalysis() *errorRatio {
	GinkgoHelper()
	prom, gauge := testprometheus.StartWithGauge(GinkgoT(), "podium_test_error_ratio", "namespace", "version")
	return &errorRatio{gauge: gauge, address: prom.Address}
}

// set reports version's error ratio in ns, and waits until Prometheus has scraped it.
func (e *errorRatio) set(ctx context.Context, ns, version string, value float64) {
	GinkgoHelper()
	e.gauge.WithLabelValues(ns, version).Set(value)
	prom := analysis.Prometheus{Address: e.address}
	Eventually(func(g Gomega) {
		got, err := prom.Measure(ctx, `max(podium_test_error_ratio{namespace="`+ns+`",version="`+version+`"})`)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal(value))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// canaryOf gives the seed model four prediction pods and a canary of two two-second steps, 25%
// and 50%, whose error ratio, measured every second, must stay at most 0.01.
func canaryOf(e *errorRatio) modelOption {
	return func(m *mlv1.RegisteredModel) {
		served(m)
		m.Spec.Serving.Replicas = new(int32(4))
		m.Spec.Serving.Rollout = &mlv1.Rollout{
			Strategy: mlv1.RolloutCanary,
			Steps: []mlv1.RolloutStep{
				{Weight: 25, Duration: metav1.Duration{Duration: 2 * time.Second}},
				{Weight: 50, Duration: metav1.Duration{Duration: 2 * time.Second}},
			},
			Analysis: &mlv1.Analysis{
				Prometheus:        mlv1.Prometheus{Address: e.address},
				Interval:          metav1.Duration{Duration: time.Second},
				InconclusiveLimit: 4,
				Metrics: []mlv1.AnalysisMetric{{
					Name:  "error-rate",
					Query: `max(podium_test_error_ratio{namespace="{{.Namespace}}",version="{{.Version}}"})`,
					Max:   numPtr("0.01"),
				}},
			},
		}
	}
}

// playDeployments plays kube-controller-manager's Deployment controller, which envtest does not
// run: every Deployment in ns reports its current template rolled out on all its replicas, but
// those named in lagging, whose status stays as it was, as a busy controller's does.
func playDeployments(ctx context.Context, g Gomega, ns string, lagging ...string) {
	var list appsv1.DeploymentList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for i := range list.Items {
		d := &list.Items[i]
		if slices.Contains(lagging, d.Name) {
			continue
		}
		n := *d.Spec.Replicas
		want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n,
			ReadyReplicas: n, AvailableReplicas: n}
		if d.Status.ObservedGeneration == want.ObservedGeneration && d.Status.AvailableReplicas == n && d.Status.Replicas == n {
			continue
		}
		base := d.DeepCopy()
		d.Status = want
		if err := k8sClient.Status().Patch(ctx, d, client.MergeFrom(base)); !apierrors.IsNotFound(err) {
			g.Expect(err).NotTo(HaveOccurred())
		}
	}
}

// replicasOf returns the replicas of a Deployment in ns, -1 when it does not exist.
func replicasOf(ctx context.Context, ns, name string) int32 {
	d := &appsv1.Deployment{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
		return -1
	}
	return *d.Spec.Replicas
}

func rolloutOf(ctx context.Context, ns string) mlv1.RolloutStatus {
	m := getModel(ctx, ns, "battle-winner-predictor")
	if m.Status.Rollout == nil {
		return mlv1.RolloutStatus{}
	}
	return *m.Status.Rollout
}

var _ = Describe("Canary rollouts", func() {
	var (
		ns string
		e  *errorRatio
		pw *productionWatcher
	)
	BeforeEach(func(ctx context.Context) {
		ns = newNamespace(ctx)
		pw = watchProduction(ctx, ns)
		cw := watchCapacity(ctx, ns, 4) // canaryOf's replicas
		DeferCleanup(func() {
			violations, _ := pw.report()
			Expect(violations).To(BeEmpty(), "two Production versions at once")
			Expect(cw.report()).To(BeEmpty(), "fewer pods available than spec.serving.replicas because of a canary")
		})
		e = startAnalysis()
		e.set(ctx, ns, "2", 0.002)
		create(ctx, seedModel(ns, canaryOf(e)), seedVersion(ns, 1, "0.8723"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(1)))
		}).Should(Succeed(), "the first version goes straight to Production: there is nothing to share traffic with")
	})

	It("runs a candidate that passes its online gates on a growing share of the pods, then promotes it", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutProgressing))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(1)))
		}).Should(Succeed())
		Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)), "the stable pods stay until a canary pod serves in their place")
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(3)))
		}).Should(Succeed())
		// the model is written before its versions
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("1=Production 2=Staging"), "the candidate is not Production")
		Expect(rolloutOf(ctx, ns).Weight).To(Equal(int32(25)))
		Eventually(func(g Gomega) {
			c := meta.FindStatusCondition(getVersion(ctx, ns, "battle-winner-predictor-2").Status.Conditions, mlv1.ConditionServing)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(mlv1.ReasonCanaryProgressing))
			g.Expect(c.Message).To(Equal("The candidate of a canary rollout: it gets 25% of the prediction pods"))
		}).Should(Succeed())
		canary := &appsv1.Deployment{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: canaryDeployment}, canary)).To(Succeed())
		Expect(canary.Spec.Template.Labels).To(HaveKeyWithValue(serving.LabelTrack, serving.TrackCanary))
		Expect(canary.Spec.Template.Labels).To(HaveKeyWithValue(serving.LabelVersion, "2"))
		Expect(canary.Spec.Template.Labels).To(HaveKeyWithValue(serving.LabelModel, "battle-winner-predictor"),
			"the prediction Service selects the canary pods too")

		sawHalf := false
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			sawHalf = sawHalf || replicasOf(ctx, ns, canaryDeployment) == 2
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(2)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(sawHalf).To(BeTrue(), "the second step runs half of the pods on the candidate")
		// the model is written before its versions
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("1=Archived 2=Production"))
		history := getModel(ctx, ns, "battle-winner-predictor").Status.History
		last := history[len(history)-1]
		Expect(last.Reason).To(Equal(mlv1.ReasonAnalysisPassed))
		Expect(last.Message).To(ContainSubstring("Passed 2 canary steps: error-rate 0.002 <= 0.01"))

		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(2)))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)), "the canary goes once the stable pods serve")
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)))
			g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutSucceeded))
		}).Should(Succeed())
	})

	It("keeps reporting the Production version as serving while the stable Deployment's status lags the pods it gives up", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.8901"))
		stepsSeen, fewestStable := map[int32]bool{}, int32(4)
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns, predictor) // the canary's pods serve; the stable status never observes its scale-down
			m := getModel(ctx, ns, "battle-winner-predictor")
			if m.Status.ProductionVersion != nil && *m.Status.ProductionVersion == 1 {
				if s := m.Status.Serving; s == nil || s.Version == nil || *s.Version != 1 || s.RolloutStartTime != nil {
					StopTrying("SERVING went empty, or a rollout began, while version 1 is Production and its pods serve").
						Attach("status.serving", s).Now()
				}
			}
			if ro := m.Status.Rollout; ro != nil && ro.Step != nil {
				stepsSeen[*ro.Step] = true
			}
			fewestStable = min(fewestStable, replicasOf(ctx, ns, predictor))
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(2)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(stepsSeen).To(HaveLen(2), "the candidate went through both steps")
		Expect(fewestStable).To(Equal(int32(2)), "the stable Deployment gave up half of its pods, unobserved by its status")

		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(2)))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
		}).Should(Succeed())
	})

	It("aborts a candidate that fails its online gates and archives it with the metric, its value and its bound", func(ctx context.Context) {
		e.set(ctx, ns, "2", 0.034)
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Archived"))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		history := getModel(ctx, ns, "battle-winner-predictor").Status.History
		last := history[len(history)-1]
		Expect(last.Reason).To(Equal(mlv1.ReasonAnalysisFailed))
		Expect(last.Message).To(ContainSubstring("error-rate 0.034 is outside <= 0.01"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns) // the canary goes once the stable pods serve again
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)))
			g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutAborted))
		}).Should(Succeed())
		Consistently(func() int64 { return productionOf(ctx, ns) }).WithTimeout(3*time.Second).Should(Equal(int64(1)),
			"a failed candidate is never tried again automatically")
	})

	It("pauses while the analysis has no data, and resumes when it comes back", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 3, "0.8901")) // nothing reports version 3's error ratio yet
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutPaused))
		}).WithTimeout(20 * time.Second).Should(Succeed())
		stalled := meta.FindStatusCondition(getModel(ctx, ns, "battle-winner-predictor").Status.Conditions, mlv1.ConditionStalled)
		Expect(stalled).NotTo(BeNil())
		Expect(stalled.Reason).To(Equal(mlv1.ReasonAnalysisInconclusive))
		Expect(stalled.Message).To(ContainSubstring("error-rate"))
		Expect(productionOf(ctx, ns)).To(Equal(int64(1)), "never promote on no data")

		e.set(ctx, ns, "3", 0.001)
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(3)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
	})

	It("aborts the candidate's rollout at once for a rollback to a version that served before", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(2)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		e.set(ctx, ns, "3", 0.001)
		create(ctx, seedVersion(ns, 3, "0.9012"))
		Eventually(func() mlv1.RolloutPhase { return rolloutOf(ctx, ns).Phase }).Should(Equal(mlv1.RolloutProgressing))

		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(3)), "the canary serves on one pod")
		}).Should(Succeed())

		requestStage(ctx, ns, "battle-winner-predictor-1", mlv1.StageProduction)
		Eventually(func(g Gomega) {
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(1)))
			g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutAborted))
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)))
		}).Should(Succeed())
		Expect(rolloutOf(ctx, ns).Message).To(ContainSubstring("version 1 became Production at once (Rollback)"))
		Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(1)),
			"the canary pod serves until the stable pods serve version 1 on all four")
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(1)))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
		}).Should(Succeed())
	})

	It("ends the canary and promotes the candidate at once when the rollout is removed from the model", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func() mlv1.RolloutPhase { return rolloutOf(ctx, ns).Phase }).Should(Equal(mlv1.RolloutProgressing))
		m := getModel(ctx, ns, "battle-winner-predictor")
		patch := client.MergeFrom(m.DeepCopy())
		m.Spec.Serving.Rollout = nil
		Expect(k8sClient.Patch(ctx, m, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(2)))
			g.Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutAborted))
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(2)))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
		}).Should(Succeed())
	})

	It("aborts a candidate that passes its first step and fails its second", func(ctx context.Context) {
		setSteps(ctx, ns, 2*time.Second, time.Minute)
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(rolloutOf(ctx, ns).Step).To(HaveValue(Equal(int32(1))))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(2)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		e.set(ctx, ns, "2", 0.5)
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Archived"))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		ro := rolloutOf(ctx, ns)
		Expect(ro.Phase).To(Equal(mlv1.RolloutAborted))
		Expect(ro.Step).To(HaveValue(Equal(int32(1))), "it failed in its second step")
		history := getModel(ctx, ns, "battle-winner-predictor").Status.History
		Expect(history[len(history)-1].Message).To(ContainSubstring("error-rate 0.5 is outside <= 0.01"))
	})

	It("keeps every pod serving when a candidate fails at a step of 100%", func(ctx context.Context) {
		m := getModel(ctx, ns, "battle-winner-predictor")
		patch := client.MergeFrom(m.DeepCopy())
		m.Spec.Serving.Rollout.Steps = []mlv1.RolloutStep{ // the CRD's own example ends at 100
			{Weight: 25, Duration: metav1.Duration{Duration: 2 * time.Second}},
			{Weight: 100, Duration: metav1.Duration{Duration: time.Minute}},
		}
		Expect(k8sClient.Patch(ctx, m, patch)).To(Succeed())
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(rolloutOf(ctx, ns).Step).To(HaveValue(Equal(int32(1))))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(4)))
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(0)), "at 100% the candidate serves on every pod")
		}).WithTimeout(30 * time.Second).Should(Succeed())
		e.set(ctx, ns, "2", 0.5)
		Eventually(func(g Gomega) {
			g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Archived"))
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(4)),
			"the aborted candidate's pods serve until the stable ones can take the traffic")
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)))
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(1)))
		}).Should(Succeed())
	})

	It("removes the canary of a promoted candidate that is rolled back before the stable pods serve it", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			if productionOf(ctx, ns) != 2 { // once it is, the stable pods are left not serving it
				playDeployments(ctx, g, ns)
			}
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(2)))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		// Version 2 passed; the stable pods do not serve it yet when a person rolls back.
		requestStage(ctx, ns, "battle-winner-predictor-1", mlv1.StageProduction)
		Eventually(func(g Gomega) {
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(1)))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(1)))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)), "the Archived candidate must not keep serving")
		}).Should(Succeed())
	})

	It("gives a newer candidate the canary pods only once the stable pods are back", func(ctx context.Context) {
		setSteps(ctx, ns, time.Minute, time.Minute)
		e.set(ctx, ns, "3", 0.001)
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(rolloutOf(ctx, ns).StepStartTime).NotTo(BeNil())
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(3)), "one canary pod serves in place of a stable one")
		}).Should(Succeed())
		canaryVersion := func() string {
			d := &appsv1.Deployment{}
			Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: canaryDeployment}, d)).To(Succeed())
			return d.Spec.Template.Annotations[serving.AnnotationVersion]
		}

		By("registering version 3 while the stable Deployment's status lags: version 2's canary pod goes on serving")
		create(ctx, seedVersion(ns, 3, "0.9012"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns, predictor)
			g.Expect(rolloutOf(ctx, ns).Version).To(Equal(int64(3)))
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(4)), "the stable Deployment gets its pods back first")
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			playDeployments(ctx, g, ns, predictor)
			g.Expect(canaryVersion()).To(Equal("2"))
		}).WithTimeout(2 * time.Second).Should(Succeed())

		By("letting the stable pods serve: then version 3 takes the canary Deployment")
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(canaryVersion()).To(Equal("3"))
		}).Should(Succeed())
	})

	It("lets a newer version that passes its gates replace the candidate, which stays Staging until it is superseded", func(ctx context.Context) {
		setSteps(ctx, ns, 10*time.Second, 2*time.Second)
		e.set(ctx, ns, "3", 0.001)
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func() int64 { return rolloutOf(ctx, ns).Version }).Should(Equal(int64(2)))
		create(ctx, seedVersion(ns, 3, "0.9012"))
		Eventually(func(g Gomega) {
			ro := rolloutOf(ctx, ns)
			g.Expect(ro.Version).To(Equal(int64(3)))
			g.Expect(ro.Phase).To(Equal(mlv1.RolloutProgressing))
		}).Should(Succeed())
		// the model is written before its versions
		Eventually(stages).WithArguments(ctx, ns).Should(Equal("1=Production 2=Staging 3=Staging"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(stages(ctx, ns)).To(Equal("1=Archived 2=Archived 3=Production"))
		}).WithTimeout(60*time.Second).Should(Succeed(), "version 2, older than the new Production version, ends Archived")
	})

	It("resumes a rollout from its status after a restart of the manager, without moving traffic by itself", func(ctx context.Context) {
		setSteps(ctx, ns, 2*time.Second, time.Minute)
		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(rolloutOf(ctx, ns).Step).To(HaveValue(Equal(int32(1))))
			g.Expect(rolloutOf(ctx, ns).StepStartTime).NotTo(BeNil())
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(2)), "the stable pods shrink once the canary's serve")
		}).WithTimeout(30 * time.Second).Should(Succeed())
		before := rolloutOf(ctx, ns)

		stopMgr()
		stopMgr = startManager()
		Consistently(func(g Gomega) {
			playDeployments(ctx, g, ns)
			ro := rolloutOf(ctx, ns)
			g.Expect(ro.Phase).To(Equal(mlv1.RolloutProgressing))
			g.Expect(ro.Step).To(Equal(before.Step), "the step neither goes back nor forward")
			g.Expect(ro.StepStartTime.Time).To(BeTemporally("==", before.StepStartTime.Time), "the step's clock keeps running")
			g.Expect(ro.StartTime.Time).To(BeTemporally("==", before.StartTime.Time))
			g.Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(2)))
			g.Expect(replicasOf(ctx, ns, predictor)).To(Equal(int32(2)))
			g.Expect(productionOf(ctx, ns)).To(Equal(int64(1)))
		}).WithTimeout(4 * time.Second).Should(Succeed())
		Expect(rolloutOf(ctx, ns).LastMeasurementTime.Time).To(BeTemporally(">", before.LastMeasurementTime.Time),
			"the new manager measures on")
	})

	It("promotes at once on a request that carries the skip-rollout annotation", func(ctx context.Context) {
		create(ctx, seedVersion(ns, 2, "0.80", func(v *mlv1.ModelVersion) {
			v.Annotations = map[string]string{mlv1.AnnotationSkipRollout: "true"}
			v.Spec.Stage = mlv1.StageProduction
		}))
		Eventually(func() int64 { return productionOf(ctx, ns) }).Should(Equal(int64(2)))
		Expect(replicasOf(ctx, ns, canaryDeployment)).To(Equal(int32(-1)), "no canary ran")
	})
})

var _ = Describe("Bake", func() {
	It("restores the previous Production version when the new one fails its online gates after the promotion", func(ctx context.Context) {
		ns := newNamespace(ctx)
		e := startAnalysis()
		e.set(ctx, ns, "2", 0.2)
		create(ctx, seedModel(ns, canaryOf(e), func(m *mlv1.RegisteredModel) {
			m.Spec.Serving.Rollout.Strategy = mlv1.RolloutReplace
			m.Spec.Serving.Rollout.Steps = nil
			m.Spec.Serving.Rollout.Bake = &metav1.Duration{Duration: time.Minute}
		}), seedVersion(ns, 1, "0.8723"))
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(servedVersion(ctx, ns)).To(Equal(int64(1)))
		}).Should(Succeed())

		create(ctx, seedVersion(ns, 2, "0.8901"))
		Eventually(func() int64 { return productionOf(ctx, ns) }).Should(Equal(int64(2)), "Replace promotes at once")
		Eventually(func(g Gomega) {
			playDeployments(ctx, g, ns)
			g.Expect(stages(ctx, ns)).To(Equal("1=Production 2=Archived"))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		history := getModel(ctx, ns, "battle-winner-predictor").Status.History
		Expect(history[len(history)-2].Reason).To(Equal(mlv1.ReasonAnalysisFailed))
		Expect(history[len(history)-2].Message).To(ContainSubstring("error-rate 0.2 is outside <= 0.01"))
		Expect(history[len(history)-1].Reason).To(Equal(mlv1.ReasonRestored))
		Expect(rolloutOf(ctx, ns).Phase).To(Equal(mlv1.RolloutAborted))
	})
})

// setSteps gives the seed model's canary two steps, of 25% and 50%, lasting first and second.
func setSteps(ctx context.Context, ns string, first, second time.Duration) {
	GinkgoHelper()
	m := getModel(ctx, ns, "battle-winner-predictor")
	patch := client.MergeFrom(m.DeepCopy())
	m.Spec.Serving.Rollout.Steps = []mlv1.RolloutStep{
		{Weight: 25, Duration: metav1.Duration{Duration: first}},
		{Weight: 50, Duration: metav1.Duration{Duration: second}},
	}
	Expect(k8sClient.Patch(ctx, m, patch)).To(Succeed())
}
