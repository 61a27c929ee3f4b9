package serving

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// --- fixture builders ---

// live is a Deployment at generation 2 with replicas desired pods, serving version 7, whose
// status tweak then sets.
func live(replicas *int32, status func(*appsv1.DeploymentStatus)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "battle-winner-predictor", Namespace: "ml", Generation: 2},
		Spec: appsv1.DeploymentSpec{
			Replicas: replicas,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{
				Annotations: map[string]string{AnnotationVersion: "7"},
			}},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2},
	}
	if status != nil {
		status(&d.Status)
	}
	return d
}

// pods sets the status counts of a Deployment.
func pods(total, updated, ready, available int32) func(*appsv1.DeploymentStatus) {
	return func(s *appsv1.DeploymentStatus) {
		s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas = total, updated, ready, available
	}
}

func progressing(status corev1.ConditionStatus, reason string) func(*appsv1.DeploymentStatus) {
	return func(s *appsv1.DeploymentStatus) {
		s.Conditions = append(s.Conditions, appsv1.DeploymentCondition{
			Type: appsv1.DeploymentProgressing, Status: status, Reason: reason,
		})
	}
}

func both(fs ...func(*appsv1.DeploymentStatus)) func(*appsv1.DeploymentStatus) {
	return func(s *appsv1.DeploymentStatus) {
		for _, f := range fs {
			f(s)
		}
	}
}

// --- Observe ---

func TestObserve(t *testing.T) {
	three := new(int32(3))
	cases := []struct {
		name        string
		deployment  *appsv1.Deployment
		serving     bool
		failed      bool
		replicas    int32
		updated     int32
		ready       int32
		version     *int64
		noTemplateV bool
	}{
		{
			name:       "every pod updated and available, and no old pod left, is serving",
			deployment: live(three, pods(3, 3, 3, 3)),
			serving:    true, replicas: 3, updated: 3, ready: 3, version: new(int64(7)),
		},
		{
			name: "a status written for an older generation is neither serving nor failed",
			deployment: func() *appsv1.Deployment {
				d := live(three, both(pods(3, 3, 3, 3), progressing(corev1.ConditionFalse, "ProgressDeadlineExceeded")))
				d.Generation, d.Status.ObservedGeneration = 3, 2
				return d
			}(),
			replicas: 3, updated: 3, ready: 3, version: new(int64(7)),
		},
		{
			name:       "a rollout with fewer updated pods than replicas is not serving yet",
			deployment: live(three, pods(3, 1, 3, 3)),
			replicas:   3, updated: 1, ready: 3, version: new(int64(7)),
		},
		{
			name:       "a rollout whose old pods remain beyond the replicas is not serving yet",
			deployment: live(three, pods(4, 3, 4, 3)),
			replicas:   3, updated: 3, ready: 4, version: new(int64(7)),
		},
		{
			name:       "updated pods that are not available yet are not serving",
			deployment: live(three, pods(3, 3, 2, 2)),
			replicas:   3, updated: 3, ready: 2, version: new(int64(7)),
		},
		{
			name: "a rollout that missed its progress deadline has failed",
			deployment: live(three, both(pods(4, 1, 3, 3),
				progressing(corev1.ConditionFalse, "ProgressDeadlineExceeded"))),
			failed: true, replicas: 3, updated: 1, ready: 3, version: new(int64(7)),
		},
		{
			name:       "a rollout still progressing has not failed",
			deployment: live(three, both(pods(4, 1, 3, 3), progressing(corev1.ConditionTrue, "ReplicaSetUpdated"))),
			replicas:   3, updated: 1, ready: 3, version: new(int64(7)),
		},
		{
			name: "a Progressing=False condition for another reason is not a missed deadline",
			deployment: live(three, both(pods(4, 1, 3, 3),
				progressing(corev1.ConditionFalse, "ReplicaSetCreateError"))),
			replicas: 3, updated: 1, ready: 3, version: new(int64(7)),
		},
		{
			name: "only the Progressing condition reports a missed deadline",
			deployment: live(three, both(pods(4, 1, 3, 3), func(s *appsv1.DeploymentStatus) {
				s.Conditions = append(s.Conditions, appsv1.DeploymentCondition{
					Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
				})
			})),
			replicas: 3, updated: 1, ready: 3, version: new(int64(7)),
		},
		{
			name:       "replicas default to 1 when spec.replicas is unset",
			deployment: live(nil, pods(1, 1, 1, 1)),
			serving:    true, replicas: 1, updated: 1, ready: 1, version: new(int64(7)),
		},
		{
			name:       "with spec.replicas unset, two pods are one too many",
			deployment: live(nil, pods(2, 1, 2, 2)),
			replicas:   1, updated: 1, ready: 2, version: new(int64(7)),
		},
		{
			name: "a template without the version annotation has no template version",
			deployment: func() *appsv1.Deployment {
				d := live(three, pods(3, 3, 3, 3))
				d.Spec.Template.Annotations = map[string]string{"other": "1"}
				return d
			}(),
			serving: true, replicas: 3, updated: 3, ready: 3, noTemplateV: true,
		},
		{
			name: "a version annotation that is not a number gives no template version",
			deployment: func() *appsv1.Deployment {
				d := live(three, pods(3, 3, 3, 3))
				d.Spec.Template.Annotations[AnnotationVersion] = "seven"
				return d
			}(),
			serving: true, replicas: 3, updated: 3, ready: 3, noTemplateV: true,
		},
		{
			name: "the template version is read from the annotation",
			deployment: func() *appsv1.Deployment {
				d := live(three, pods(3, 3, 3, 3))
				d.Spec.Template.Annotations[AnnotationVersion] = "12345678901"
				return d
			}(),
			serving: true, replicas: 3, updated: 3, ready: 3, version: new(int64(12345678901)),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Observe(tc.deployment)
			if o.Serving != tc.serving {
				t.Errorf("Serving = %v, want %v", o.Serving, tc.serving)
			}
			if o.Failed != tc.failed {
				t.Errorf("Failed = %v, want %v", o.Failed, tc.failed)
			}
			if o.Replicas != tc.replicas || o.UpdatedReplicas != tc.updated || o.ReadyReplicas != tc.ready {
				t.Errorf("replicas/updated/ready = %d/%d/%d, want %d/%d/%d",
					o.Replicas, o.UpdatedReplicas, o.ReadyReplicas, tc.replicas, tc.updated, tc.ready)
			}
			switch {
			case tc.noTemplateV && o.TemplateVersion != nil:
				t.Errorf("TemplateVersion = %d, want nil", *o.TemplateVersion)
			case tc.version != nil && (o.TemplateVersion == nil || *o.TemplateVersion != *tc.version):
				t.Errorf("TemplateVersion = %v, want %d", o.TemplateVersion, *tc.version)
			}
		})
	}
}

// lagging is live's Deployment with replicas pods at generation 3, a change its status, which
// status tweaks, has not observed yet: it counts the pods of generation 2.
func lagging(replicas int32, status func(*appsv1.DeploymentStatus)) *appsv1.Deployment {
	d := live(&replicas, status)
	d.Generation = 3
	return d
}

func TestObservedServes(t *testing.T) {
	v6, v7 := new(int64(6)), new(int64(7))
	cases := []struct {
		name       string
		deployment *appsv1.Deployment
		before     *int64 // the version served when last observed
		want       *int64
	}{
		{
			name:       "every pod updated and available serves the template's version",
			deployment: live(new(int32(3)), pods(3, 3, 3, 3)),
			want:       v7,
		},
		{
			name:       "a scale-down the status has not observed yet still serves the version served before",
			deployment: lagging(2, pods(3, 3, 3, 3)),
			before:     v7, want: v7,
		},
		{
			name:       "a scale-up the status has not observed yet still serves the version served before",
			deployment: lagging(4, pods(3, 3, 3, 3)),
			before:     v7, want: v7,
		},
		{
			name:       "a scale-up whose new pods are not available yet still serves the version served before",
			deployment: live(new(int32(4)), pods(4, 4, 3, 3)),
			before:     v7, want: v7,
		},
		{
			name:       "a scale-down whose pods are still counted still serves the version served before",
			deployment: live(new(int32(2)), pods(3, 3, 3, 3)),
			before:     v7, want: v7,
		},
		{
			name:       "a new version's template the status has not observed yet does not serve",
			deployment: lagging(3, pods(3, 3, 3, 3)),
			before:     v6,
		},
		{
			name:       "a new version whose pods are all updated but not all available does not serve",
			deployment: live(new(int32(3)), pods(3, 3, 2, 2)),
			before:     v6,
		},
		{
			name:       "a new version while none served before does not serve until its pods are available",
			deployment: lagging(3, pods(3, 3, 3, 3)),
		},
		{
			name:       "a new template of the same version does not serve while pods of the old one are left",
			deployment: live(new(int32(3)), pods(4, 1, 4, 3)),
			before:     v7,
		},
		{
			name:       "the version served before does not serve on no available pod",
			deployment: live(new(int32(3)), pods(3, 3, 0, 0)),
			before:     v7,
		},
		{
			name: "a template without a version serves none",
			deployment: func() *appsv1.Deployment {
				d := live(new(int32(3)), pods(3, 3, 3, 3))
				delete(d.Spec.Template.Annotations, AnnotationVersion)
				return d
			}(),
			before: v7,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Observe(tc.deployment).Serves(tc.before)
			switch {
			case tc.want == nil && got != nil:
				t.Errorf("Serves = %d, want none", *got)
			case tc.want != nil && (got == nil || *got != *tc.want):
				t.Errorf("Serves = %v, want %d", got, *tc.want)
			}
		})
	}
}

func TestObserveReadsARenderedDeployment(t *testing.T) {
	cases := []struct {
		name    string
		version int64
	}{
		{"the version Podium rendered is the version observed", 7},
		{"a large version number survives the round trip", 1 << 40},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := render(t, servedModel(), version(tc.version, s3URI, ""))
			o := Observe(d)
			if o.TemplateVersion == nil || *o.TemplateVersion != tc.version {
				t.Errorf("TemplateVersion = %v, want %d", o.TemplateVersion, tc.version)
			}
			if o.Replicas != 3 {
				t.Errorf("Replicas = %d, want spec.serving's 3", o.Replicas)
			}
			if o.Serving {
				t.Error("a Deployment without status counts as serving")
			}
		})
	}
}

// --- Contains ---

// asLive is what the API server returns for an applied Deployment: the rendering with defaults,
// fields of other managers and a status.
func asLive(d *appsv1.Deployment) *appsv1.Deployment {
	l := d.DeepCopy()
	l.UID, l.ResourceVersion, l.Generation = "d-uid", "12345", 4
	l.CreationTimestamp = metav1.Now()
	l.Labels["argocd.argoproj.io/instance"] = "ml"
	l.Annotations = map[string]string{"deployment.kubernetes.io/revision": "3"}
	l.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "podium", Operation: metav1.ManagedFieldsOperationApply}}
	l.Spec.RevisionHistoryLimit = new(int32(10))
	maxUnavailable, maxSurge := intstr.FromString("25%"), intstr.FromString("25%")
	l.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge}}
	l.Spec.Template.Labels["pod-template-hash"] = "abc123"
	l.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "2024-01-01T00:00:00Z"
	spec := &l.Spec.Template.Spec
	spec.RestartPolicy = corev1.RestartPolicyAlways
	spec.DNSPolicy = corev1.DNSClusterFirst
	spec.SchedulerName = "default-scheduler"
	spec.TerminationGracePeriodSeconds = new(int64(30))
	spec.SecurityContext = &corev1.PodSecurityContext{}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			c := &cs[i]
			c.TerminationMessagePath = corev1.TerminationMessagePathDefault
			if c.TerminationMessagePolicy == "" {
				c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
			}
			c.ImagePullPolicy = corev1.PullIfNotPresent
			for j := range c.Ports {
				if c.Ports[j].Protocol == "" {
					c.Ports[j].Protocol = corev1.ProtocolTCP
				}
			}
		}
	}
	// A sidecar injector appends its env var after Podium's.
	spec.Containers[0].Env = append(spec.Containers[0].Env, corev1.EnvVar{Name: "OTEL_SERVICE_NAME", Value: "bw"})
	spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	l.Status = appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}
	return l
}

func TestContainsDeployment(t *testing.T) {
	cases := []struct {
		name    string
		self    bool // observed is the rendering itself, not asLive's
		desired func(*appsv1.Deployment)
		live    func(*appsv1.Deployment)
		want    bool
	}{
		{
			name: "a rendering contains itself",
			self: true,
			want: true,
		},
		{
			name: "a live deployment with server defaults and other managers' fields contains the rendering",
			want: true,
		},
		{
			name: "a defaulted port protocol does not count as a difference",
			live: func(l *appsv1.Deployment) {
				l.Spec.Template.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolTCP
			},
			want: true,
		},
		{
			name:    "status in the desired object is ignored",
			desired: func(d *appsv1.Deployment) { d.Status = appsv1.DeploymentStatus{Replicas: 9, ReadyReplicas: 9} },
			want:    true,
		},
		{
			name: "a model volume turned into another kind of volume is not contained",
			live: func(l *appsv1.Deployment) {
				for i := range l.Spec.Template.Spec.Volumes {
					if v := &l.Spec.Template.Spec.Volumes[i]; v.Name == VolumeName {
						v.EmptyDir, v.HostPath = nil, &corev1.HostPathVolumeSource{Path: "/srv/models"}
					}
				}
			},
		},
		{
			name: "a different replica count is not contained",
			live: func(l *appsv1.Deployment) { l.Spec.Replicas = new(int32(1)) },
		},
		{
			name: "unset replicas on the live object are not the desired 3",
			live: func(l *appsv1.Deployment) { l.Spec.Replicas = nil },
		},
		{
			name: "a different image is not contained",
			live: func(l *appsv1.Deployment) { l.Spec.Template.Spec.Containers[0].Image = "ghcr.io/acme/server:1.1" },
		},
		{
			name: "an older version annotation is not contained",
			live: func(l *appsv1.Deployment) { l.Spec.Template.Annotations[AnnotationVersion] = "6" },
		},
		{
			name: "a different MODEL_URI is not contained",
			live: func(l *appsv1.Deployment) {
				env := l.Spec.Template.Spec.Containers[0].Env
				for i := range env {
					if env[i].Name == "MODEL_URI" {
						env[i].Value = "s3://ml-artifacts/battle-winner/6/"
					}
				}
			},
		},
		{
			name: "a missing desired label is not contained",
			live: func(l *appsv1.Deployment) { delete(l.Labels, LabelManagedBy) },
		},
		{
			name: "a missing desired pod label is not contained",
			live: func(l *appsv1.Deployment) { delete(l.Spec.Template.Labels, "team") },
		},
		{
			name: "a shorter env list is not contained",
			live: func(l *appsv1.Deployment) {
				c := &l.Spec.Template.Spec.Containers[0]
				c.Env = c.Env[:len(c.Env)-2]
			},
		},
		{
			name: "an env var inserted before Podium's shifts the list and is not contained",
			live: func(l *appsv1.Deployment) {
				c := &l.Spec.Template.Spec.Containers[0]
				c.Env = append([]corev1.EnvVar{{Name: "INJECTED", Value: "1"}}, c.Env...)
			},
		},
		{
			name: "a live deployment without the fetcher is not contained",
			live: func(l *appsv1.Deployment) { l.Spec.Template.Spec.InitContainers = nil },
		},
		{
			name: "a writable model mount is not the desired read-only one",
			live: func(l *appsv1.Deployment) {
				c := &l.Spec.Template.Spec.Containers[0]
				for i := range c.VolumeMounts {
					c.VolumeMounts[i].ReadOnly = false
				}
			},
		},
		{
			name: "a live deployment owned by another object is not contained",
			live: func(l *appsv1.Deployment) { l.OwnerReferences[0].UID = "someone-else" },
		},
		{
			name: "a live deployment without a selector is not contained",
			live: func(l *appsv1.Deployment) { l.Spec.Selector = nil },
		},
		{
			name: "a different progress deadline is not contained",
			live: func(l *appsv1.Deployment) { l.Spec.ProgressDeadlineSeconds = new(int32(600)) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			desired := render(t, servedModel(func(m *mlv1.RegisteredModel) {
				m.Spec.Serving.StorageSecretName = "s3-credentials"
			}), version(7, s3URI, digest))
			observed := asLive(desired)
			if tc.self {
				observed = desired.DeepCopy()
			}
			if tc.live != nil {
				tc.live(observed)
			}
			if tc.desired != nil {
				tc.desired(desired)
			}
			if got := Contains(observed, desired); got != tc.want {
				t.Errorf("Contains = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContainsService(t *testing.T) {
	asLiveService := func(s *corev1.Service) *corev1.Service {
		l := s.DeepCopy()
		l.UID, l.ResourceVersion = "s-uid", "77"
		l.Labels["extra"] = "yes"
		l.Spec.Type = corev1.ServiceTypeClusterIP
		l.Spec.ClusterIP, l.Spec.ClusterIPs = "10.0.0.12", []string{"10.0.0.12"}
		l.Spec.SessionAffinity = corev1.ServiceAffinityNone
		l.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		l.Spec.InternalTrafficPolicy = new(corev1.ServiceInternalTrafficPolicyCluster)
		return l
	}
	cases := []struct {
		name string
		live func(*corev1.Service)
		want bool
	}{
		{name: "a live service with a cluster IP and defaults contains the rendering", want: true},
		{
			name: "a port targeting another container port is not contained",
			live: func(l *corev1.Service) { l.Spec.Ports[0].TargetPort = intstr.FromInt32(9090) },
		},
		{
			name: "a port targeting the named port instead of the number is not contained",
			live: func(l *corev1.Service) { l.Spec.Ports[0].TargetPort = intstr.FromString("http") },
		},
		{
			name: "a service without the desired ports is not contained",
			live: func(l *corev1.Service) { l.Spec.Ports = nil },
		},
		{
			name: "a selector missing the component is not contained",
			live: func(l *corev1.Service) { delete(l.Spec.Selector, LabelComponent) },
		},
		{
			name: "an extra selector label from another manager is still contained",
			live: func(l *corev1.Service) { l.Spec.Selector["extra"] = "yes" },
			want: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			desired := Service(servedModel())
			observed := asLiveService(desired)
			if tc.live != nil {
				tc.live(observed)
			}
			if got := Contains(observed, desired); got != tc.want {
				t.Errorf("Contains = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContainsUnconvertibleObjects(t *testing.T) {
	var nilDeployment *appsv1.Deployment
	cases := []struct {
		name              string
		observed, desired runtime.Object
	}{
		{"a nil observed object contains nothing", nilDeployment, &appsv1.Deployment{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("Contains panicked: %v", r)
				}
			}()
			if Contains(tc.observed, tc.desired) {
				t.Error("Contains = true, want false")
			}
		})
	}
}

const bundleRef = "registry.ml:5000/ml/battle-winner@sha256:4d12aa0e1c5f0c6b5d0f9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c"

// withImageVolume gives p the bundle's image volume, as bundleMount ImageVolume renders it.
func withImageVolume(p corev1.Pod) corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{
		Image: &corev1.ImageVolumeSource{Reference: bundleRef, PullPolicy: corev1.PullIfNotPresent}}})
	return p
}

func TestPodProblem(t *testing.T) {
	pod := func(name, version string, init, main []corev1.ContainerStatus) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnotationVersion: version}},
			Status:     corev1.PodStatus{InitContainerStatuses: init, ContainerStatuses: main},
		}
	}
	waiting := func(name, reason, msg string) []corev1.ContainerStatus {
		return []corev1.ContainerStatus{{Name: name, State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
	}
	failed := func(name string, code int32, msg string) []corev1.ContainerStatus {
		return []corev1.ContainerStatus{{Name: name, State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: msg}}}}
	}
	tests := []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{"no pods, no problem", nil, ""},
		{"a missing Secret, as the kubelet reports it",
			[]corev1.Pod{pod("p1", "4", waiting("podium-fetch", "CreateContainerConfigError", `secret "s3" not found`), nil)},
			`pod p1, container podium-fetch: CreateContainerConfigError: secret "s3" not found`},
		{"the fetcher's one-line failure",
			[]corev1.Pod{pod("p1", "4", failed("podium-fetch", 1, "fetch s3://b/4/: 403 Forbidden\n"), nil)},
			"pod p1, container podium-fetch exited with 1: fetch s3://b/4/: 403 Forbidden"},
		{"an image that cannot be pulled",
			[]corev1.Pod{pod("p1", "4", nil, waiting("predictor", "ImagePullBackOff", "back-off pulling"))},
			"pod p1, container predictor: ImagePullBackOff: back-off pulling"},
		{"a pod of another version does not count",
			[]corev1.Pod{pod("old", "3", nil, waiting("predictor", "CrashLoopBackOff", "boom"))}, ""},
		{"a container still starting is no problem",
			[]corev1.Pod{pod("p1", "4", waiting("podium-fetch", "PodInitializing", ""), nil)}, ""},
		{"an image volume that cannot be pulled names the bundle's reference",
			[]corev1.Pod{withImageVolume(pod("p1", "4", nil,
				waiting("predictor", "ErrImagePull", `failed to pull and unpack image "`+bundleRef+`": not found`)))},
			`pod p1, container predictor: ErrImagePull: failed to pull and unpack image "` + bundleRef + `": not found ` +
				"(the node cannot pull the bundle's image volume " + bundleRef + "; check that the registry holds it, " +
				"the pod template's imagePullSecrets, and that the node reaches the registry)"},
		{"an image volume in back-off after a refused pull",
			[]corev1.Pod{withImageVolume(pod("p1", "4", nil,
				waiting("predictor", "ImagePullBackOff", `Back-off pulling image "`+bundleRef+`"`)))},
			`pod p1, container predictor: ImagePullBackOff: Back-off pulling image "` + bundleRef + `" ` +
				"(the node cannot pull the bundle's image volume " + bundleRef + "; check that the registry holds it, " +
				"the pod template's imagePullSecrets, and that the node reaches the registry)"},
		{"the predictor's own image failing next to an image volume gets no bundle hint",
			[]corev1.Pod{withImageVolume(pod("p1", "4", nil,
				waiting("predictor", "ImagePullBackOff", `Back-off pulling image "ghcr.io/acme/server:1.2"`)))},
			`pod p1, container predictor: ImagePullBackOff: Back-off pulling image "ghcr.io/acme/server:1.2"`},
		{"a runtime that cannot mount the image volume",
			[]corev1.Pod{withImageVolume(pod("p1", "4", nil,
				waiting("predictor", "CreateContainerError", "failed to create containerd container: image volume not supported")))},
			"pod p1, container predictor: CreateContainerError: failed to create containerd container: image volume not supported " +
				"(the pod mounts the bundle as an image volume: the node's container runtime must support image volumes and " +
				"OCI artifacts, such as containerd 2.1 or later, or CRI-O 1.31 or later; else use spec.serving.bundleMount InitContainer)"},
		{"an image that is never pulled",
			[]corev1.Pod{pod("p1", "4", nil, waiting("predictor", "ErrImageNeverPull", "image is not present"))},
			"pod p1, container predictor: ErrImageNeverPull: image is not present"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PodProblem(tt.pods, 4); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
