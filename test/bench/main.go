// Command bench measures the operator as users run it: the real manager binary against a real
// kube-apiserver and etcd (envtest). Run it from the repository root with `make bench`; it writes its results to
// docs/benchmark-results.md. It fails only when the system does not converge or writes while
// idle: the numbers are for reading, not thresholds that flake on a busy machine.
package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/testnet"
)

const (
	namespace = "default"
	// baselineNamespace holds the baseline's own objects, which the manager does not watch.
	baselineNamespace = "baseline"
	models            = 1000
	versionsPerModel  = 10
	promotionSamples  = 200
	idleWindow        = 10 * time.Second
	createConcurrency = 16
)

// stalledModels canaries of stalledMetrics online gates each ask a Prometheus that never answers
// while stalledSamples other models are promoted.
const stalledModels, stalledMetrics, stalledSamples = 8, 8, 50

type results struct {
	coldCreate, coldConverge time.Duration
	promotionLatencies       []time.Duration
	stalledLatencies         []time.Duration
	writesPerPromotion       float64
	idleWrites               int
	peakRSSKiB               int
	coldCPU                  time.Duration
	baselinePatchesPerSecond float64
	coldWrites               int
}

func main() {
	t := &run{}
	benchmark(t)
	t.cleanup()
	if t.failed {
		os.Exit(1)
	}
}

// run is the benchmark's failure and cleanup handling: every cleanup runs, newest first, before
// the process exits, whatever failed.
type run struct {
	cleanups []func()
	failed   bool
}

func (r *run) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *run) cleanup() {
	for _, f := range slices.Backward(r.cleanups) {
		f()
	}
}

func (r *run) Helper() {}

func (r *run) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (r *run) Errorf(format string, args ...any) {
	r.Logf(format, args...)
	r.failed = true
}

func (r *run) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

func (r *run) Fatalf(format string, args ...any) {
	r.Logf(format, args...)
	r.cleanup()
	os.Exit(1)
}

func (r *run) TempDir() string {
	dir, err := os.MkdirTemp("", "podium-bench-")
	if err != nil {
		r.Fatal(err)
	}
	r.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func benchmark(t *run) {
	logf.SetLogger(logr.Discard()) // the benchmark's informers have nothing to say
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mlv1.AddToScheme(scheme))

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	t.Cleanup(func() { _ = env.Stop() }) // also after a start that failed halfway
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var r results

	t.Logf("registering %d models x %d versions before the manager starts", models, versionsPerModel)
	start := time.Now()
	createAll(ctx, t, c, seedObjects())
	r.coldCreate = time.Since(start)

	r.baselinePatchesPerSecond = baseline(ctx, t, c)

	// The benchmark follows the objects through an informer cache, as the manager does, so that
	// checking for convergence costs the API server no lists.
	observed, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cacheCtx, stopCache := context.WithCancel(ctx)
	t.Cleanup(stopCache)
	for _, o := range []client.Object{&mlv1.RegisteredModel{}, &mlv1.ModelVersion{}} {
		if _, err := observed.GetInformer(cacheCtx, o); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = observed.Start(cacheCtx) }()
	observed.WaitForCacheSync(cacheCtx)

	coldBefore := statusWrites(t, cfg)
	manager, pid := startManager(t, cfg)
	start = time.Now()
	waitFor(t, 5*time.Minute, 50*time.Millisecond, func() bool { return convergedModels(ctx, t, observed) == models })
	r.coldConverge = time.Since(start)
	r.coldCPU = cpuTime(t, pid)
	r.coldWrites = statusWrites(t, cfg) - coldBefore
	t.Logf("cold start converged in %s", r.coldConverge)

	writesBefore := statusWrites(t, cfg)
	r.promotionLatencies = measurePromotions(ctx, t, c, promotionSamples, versionsPerModel+1)
	r.writesPerPromotion = float64(statusWrites(t, cfg)-writesBefore) / promotionSamples
	t.Logf("promotion latency p50 %s, p99 %s, %.1f status writes per promotion", ms(percentile(r.promotionLatencies, 0.5)),
		ms(percentile(r.promotionLatencies, 0.99)), r.writesPerPromotion)

	waitFor(t, time.Minute, 50*time.Millisecond, func() bool { return convergedModels(ctx, t, observed) == models })
	idleBefore := statusWrites(t, cfg)
	time.Sleep(idleWindow) // the measurement itself: nothing may be written during this window
	r.idleWrites = statusWrites(t, cfg) - idleBefore

	r.peakRSSKiB = peakRSS(t, pid)

	t.Logf("promoting %d models while %d canaries' Prometheus stalls", stalledSamples, stalledModels)
	stallCanaries(ctx, t, c, stallingPrometheus(t))
	r.stalledLatencies = measurePromotions(ctx, t, c, stalledSamples, versionsPerModel+2)
	_ = manager.Process.Kill()
	report(t, r)
}

// stallingPrometheus is the address of a server that accepts connections and never answers.
func stallingPrometheus(t *run) string { return "http://" + testnet.SilentListener(t) }

// stallCanaries starts stalledModels canaries whose online gates ask address, and returns once
// every one's step has begun, so that their analysis is due at every interval. envtest runs no
// Deployment controller: the benchmark reports the Deployments rolled out, as it would.
func stallCanaries(ctx context.Context, t *run, c client.Client, address string) {
	names := map[string]bool{}
	for i := range stalledModels {
		m := seedModel(models + i)
		names[m.Name] = true
		replicas := int32(2)
		m.Spec.Serving = &mlv1.Serving{Replicas: &replicas, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "predictor", Image: "registry.example.com/predictor:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}}}}}}}
		analysis := &mlv1.Analysis{Prometheus: mlv1.Prometheus{Address: address},
			Interval: metav1.Duration{Duration: time.Second}, InconclusiveLimit: 1000}
		for j := range stalledMetrics {
			analysis.Metrics = append(analysis.Metrics, mlv1.AnalysisMetric{Name: fmt.Sprintf("m%d", j),
				Query: fmt.Sprintf(`up{job="%d"}`, j), Max: new(mlv1.Number("1"))})
		}
		m.Spec.Serving.Rollout = &mlv1.Rollout{Strategy: mlv1.RolloutCanary, Analysis: analysis,
			Steps: []mlv1.RolloutStep{{Weight: 50, Duration: metav1.Duration{Duration: time.Hour}}}}
		createAll(ctx, t, c, []client.Object{m, seedVersion(models+i, 1)})
	}
	rolledOut := func(want func(mlv1.RegisteredModel) bool) func() bool {
		return func() bool {
			playDeployments(ctx, t, c)
			var list mlv1.RegisteredModelList
			if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, m := range list.Items {
				if names[m.Name] && want(m) {
					n++
				}
			}
			return n == stalledModels
		}
	}
	waitFor(t, 2*time.Minute, 100*time.Millisecond, rolledOut(func(m mlv1.RegisteredModel) bool {
		return m.Status.Serving != nil && m.Status.Serving.Version != nil && *m.Status.Serving.Version == 1
	}))
	for i := range stalledModels {
		createAll(ctx, t, c, []client.Object{seedVersion(models+i, 2)})
	}
	waitFor(t, 2*time.Minute, 100*time.Millisecond, rolledOut(func(m mlv1.RegisteredModel) bool {
		return m.Status.Rollout != nil && m.Status.Rollout.Version == 2 && m.Status.Rollout.StepStartTime != nil
	}))
}

// playDeployments reports every Deployment of the namespace rolled out on all its replicas.
func playDeployments(ctx context.Context, t *run, c client.Client) {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		d := &list.Items[i]
		n := *d.Spec.Replicas
		if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == n && d.Status.UpdatedReplicas == n {
			continue
		}
		base := d.DeepCopy()
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n,
			ReadyReplicas: n, AvailableReplicas: n}
		if err := c.Status().Patch(ctx, d, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
}

func seedModel(i int) *mlv1.RegisteredModel {
	return &mlv1.RegisteredModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("model-%04d", i)},
		Spec: mlv1.RegisteredModelSpec{Promotion: mlv1.Promotion{Mode: mlv1.PromotionAutomatic,
			Gates: []mlv1.Gate{{Metric: "test_accuracy", Min: new(mlv1.Number("0.85"))}}}},
	}
}

// version n of model i: every version passes, so the newest is Production.
func seedVersion(i int, n int64) *mlv1.ModelVersion {
	return &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("model-%04d-%d", i, n)},
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: fmt.Sprintf("model-%04d", i), Version: n,
			Artifact: mlv1.Artifact{URI: fmt.Sprintf("s3://bench/model-%04d/%d/", i, n)},
			Metrics:  map[string]mlv1.Number{"test_accuracy": mlv1.Number(fmt.Sprintf("0.%d", 8600+n))},
		},
	}
}

// seedObjects are the models and versions of the cold start.
func seedObjects() []client.Object {
	var objs []client.Object
	for i := range models {
		objs = append(objs, seedModel(i))
		for n := int64(1); n <= versionsPerModel; n++ {
			objs = append(objs, seedVersion(i, n))
		}
	}
	return objs
}

func createAll[T client.Object](ctx context.Context, t *run, c client.Client, objs []T) {
	jobs := make(chan client.Object)
	var wg sync.WaitGroup
	for range createConcurrency {
		wg.Go(func() {
			for o := range jobs {
				if err := c.Create(ctx, o); err != nil {
					t.Errorf("creating %s: %v", o.GetName(), err)
				}
			}
		})
	}
	for _, o := range objs {
		jobs <- o
	}
	close(jobs)
	wg.Wait()
}

// baselineStatus is a ModelVersion status of the size the operator writes.
var baselineStatus = []byte(`{"status":{"stage":"Archived","observedGeneration":1,
"primaryMetric":"test_accuracy=0.8601",
"gates":[{"metric":"test_accuracy","value":0.8601,"bound":">= 0.85","passed":true}],
"conditions":[{"type":"GatesPassed","status":"True","reason":"AllGatesPassed","message":"test_accuracy 0.8601 >= 0.85",
"observedGeneration":1,"lastTransitionTime":"2026-01-01T00:00:00Z"},
{"type":"Ready","status":"True","reason":"Reconciled","message":"Stage Archived","observedGeneration":1,
"lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)

// baseline measures what the API server alone does: status patches of the size the operator
// writes, to ModelVersions, from 8 writers, with no operator running. It patches ModelVersions of
// its own, in a namespace the manager does not watch, so that it leaves no status on the objects
// the cold start measures.
func baseline(ctx context.Context, t *run, c client.Client) float64 {
	const patches, writers = 2000, 8
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: baselineNamespace}}); err != nil {
		t.Fatal(err)
	}
	own := make([]*mlv1.ModelVersion, 0, patches)
	for j := range patches {
		v := seedVersion(j, 1)
		v.Namespace, v.Spec.RegisteredModel = baselineNamespace, "baseline"
		own = append(own, v)
	}
	createAll(ctx, t, c, own)
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for j := range jobs {
				v := own[j]
				patch := client.RawPatch(types.MergePatchType, baselineStatus)
				if err := c.Status().Patch(ctx, v, patch); err != nil {
					t.Errorf("patching %s: %v", v.Name, err)
				}
			}
		})
	}
	for j := range patches {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	return patches / time.Since(start).Seconds()
}

// convergedModels counts the models whose newest version is recorded as Production on the
// model and on the version.
func convergedModels(ctx context.Context, t *run, c client.Reader) int {
	var rms mlv1.RegisteredModelList
	if err := c.List(ctx, &rms); err != nil {
		t.Fatal(err)
	}
	var mvs mlv1.ModelVersionList
	if err := c.List(ctx, &mvs); err != nil {
		t.Fatal(err)
	}
	latest := map[string]int64{}
	production := map[string]int64{}
	for _, v := range mvs.Items {
		latest[v.Spec.RegisteredModel] = max(latest[v.Spec.RegisteredModel], v.Spec.Version)
		if v.Status.Stage == mlv1.StageProduction {
			production[v.Spec.RegisteredModel] = v.Spec.Version
		}
	}
	n := 0
	for _, m := range rms.Items {
		if p := m.Status.ProductionVersion; p != nil && *p == latest[m.Name] && production[m.Name] == *p {
			n++
		}
	}
	return n
}

// measurePromotions registers, one at a time, a new passing version of a different model and
// times how long until a watch shows it Production. The operator archives the old version
// before it promotes the new one, which the benchmark checks once the new one is Production.
func measurePromotions(ctx context.Context, t *run, c client.WithWatch, samples int, n int64) []time.Duration {
	var out []time.Duration
	for s := range samples {
		i := s * (models / samples)
		v := seedVersion(i, n)
		w, err := c.Watch(ctx, &mlv1.ModelVersionList{}, client.InNamespace(namespace),
			client.MatchingFields{"metadata.name": v.Name})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.Create(ctx, v); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(30 * time.Second)
	wait:
		for {
			select {
			case ev := <-w.ResultChan():
				if got, ok := ev.Object.(*mlv1.ModelVersion); ok && got.Status.Stage == mlv1.StageProduction {
					break wait
				}
			case <-timeout:
				t.Fatalf("version %s was not promoted within 30s", v.Name)
			}
		}
		out = append(out, time.Since(start))
		w.Stop()
		var old mlv1.ModelVersion
		key := client.ObjectKey{Namespace: namespace, Name: fmt.Sprintf("model-%04d-%d", i, n-1)}
		if err := c.Get(ctx, key, &old); err != nil {
			t.Fatal(err)
		}
		if old.Status.Stage != mlv1.StageArchived {
			t.Fatalf("%s is Production but %s is %s", v.Name, old.Name, old.Status.Stage)
		}
	}
	return out
}

// waitFor polls cond every interval until it holds.
func waitFor(t *run, timeout, interval time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not converged within %s", timeout)
		}
		time.Sleep(interval)
	}
}

// startManager runs bin/manager against the envtest API server.
func startManager(t *run, cfg *rest.Config) (*exec.Cmd, int) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := clientcmdapi.NewConfig()
	const name = "bench"
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(os.Getenv("PODIUM_BIN_DIR"), "manager")
	// One manager per run, so no leader election: acquiring the Lease would add to the cold start.
	args := append([]string{"--leader-elect=false", "--health-probe-bind-address=0", "--metrics-bind-address=0",
		"--watch-namespaces=" + namespace},
		strings.Fields(os.Getenv("MANAGER_ARGS"))...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	logPath := filepath.Join(dir, "manager.log")
	if p := os.Getenv("BENCH_MANAGER_LOG"); p != "" {
		logPath = p
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s (build it with make build): %v", bin, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, cmd.Process.Pid
}

// statusWrites is the API server's count of successful status writes (PATCH and PUT) to Podium's kinds.
func statusWrites(t *run, cfg *rest.Config) int {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	body, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("reading the API server's metrics: %v", err)
	}
	total := 0
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `group="ml.podium.dev"`) ||
			!strings.Contains(line, `subresource="status"`) ||
			!strings.Contains(line, `verb="PATCH"`) && !strings.Contains(line, `verb="PUT"`) ||
			!strings.Contains(line, `code="200"`) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		total += int(f)
	}
	if total == 0 {
		t.Fatalf("the API server's metrics count no status writes to ml.podium.dev")
	}
	return total
}

func peakRSS(t *run, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if value, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.Atoi(strings.Fields(value)[0])
			return kib
		}
	}
	return 0
}

// cpuTime is the user and system CPU time a process has used (clock ticks of 10 ms).
func cpuTime(t *run, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(math.Ceil(p*float64(len(s))))-1]
}

func report(t *run, r results) {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	p50, p99 := percentile(r.promotionLatencies, 0.5), percentile(r.promotionLatencies, 0.99)
	rows := []struct {
		measure, result, target string
		met                     bool
	}{
		{fmt.Sprintf("promotion latency p50 (%d promotions: new version applied -> it is Production, the old one Archived)",
			promotionSamples), ms(p50), "< 25 ms", p50 < 25*time.Millisecond},
		{"promotion latency p99", ms(p99), "< 100 ms", p99 < 100*time.Millisecond},
		{fmt.Sprintf("promotion latency p50 / p99 (%d promotions) while %d canaries of %d online gates each ask a "+
			"Prometheus that accepts connections and never answers", stalledSamples, stalledModels, stalledMetrics),
			ms(percentile(r.stalledLatencies, 0.5)) + " / " + ms(percentile(r.stalledLatencies, 0.99)),
			"as without them", percentile(r.stalledLatencies, 0.99) < 2*max(p99, 50*time.Millisecond)},
		{fmt.Sprintf("cold start: %d models x %d versions registered, then the manager starts -> all converged",
			models, versionsPerModel),
			fmt.Sprintf("%s (manager CPU %s, %d status writes)",
				r.coldConverge.Round(10*time.Millisecond), r.coldCPU.Round(10*time.Millisecond), r.coldWrites),
			"< 20 s", r.coldConverge < 20*time.Second},
		{"status writes per promotion (API server's count)", fmt.Sprintf("%.1f", r.writesPerPromotion),
			"close to 3 (model, old version, new version)", r.writesPerPromotion < 3.5},
		{fmt.Sprintf("status writes while idle (%s)", idleWindow), strconv.Itoa(r.idleWrites), "0", r.idleWrites == 0},
		{"manager peak RSS (VmHWM)", fmt.Sprintf("%d MiB", r.peakRSSKiB/1024), "< 150 MiB", r.peakRSSKiB < 150*1024},
	}
	var b strings.Builder
	b.WriteString("| measure | result | target | met |\n| --- | --- | --- | --- |\n")
	for _, row := range rows {
		met := "missed"
		if row.met {
			met = "met"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.measure, row.result, row.target, met)
	}
	fmt.Fprintf(&b, "| for scale: the API server alone, ModelVersion status patches from 8 writers "+
		"on objects of their own | %.0f per second | | |\n", r.baselinePatchesPerSecond)
	fmt.Fprintf(&b, "\nMachine: %s, %d cores, %s. Registering the %d objects took %s.\n",
		cpu, goruntime.NumCPU(), goruntime.Version(), models*(versionsPerModel+1), r.coldCreate.Round(100*time.Millisecond))
	text := b.String()
	fmt.Print(text)
	if out := os.Getenv("BENCH_OUT"); out != "" {
		if err := writeSection(out, text); err != nil {
			t.Fatal(err)
		}
	}
	if r.idleWrites != 0 {
		t.Errorf("the operator wrote %d times while idle", r.idleWrites)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// The benchmark's table stands between these markers in its results file, so that the file can
// hold other results too (the explorer's).
const (
	sectionBegin = "<!-- make bench: begin -->\n"
	sectionEnd   = "<!-- make bench: end -->\n"
)

// writeSection replaces the benchmark's section of the results file at path with text, or
// writes the file with only that section when it has none.
func writeSection(path, text string) error {
	section := sectionBegin + text + sectionEnd
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	before, tail, found := strings.Cut(string(old), sectionBegin)
	_, after, closed := strings.Cut(tail, sectionEnd)
	if !found || !closed {
		before, after = "", ""
	}
	return os.WriteFile(path, []byte(before+section+after), 0o644)
}
