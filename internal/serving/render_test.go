package serving

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

// --- fixture builders ---

const (
	fetcherImage = "ghcr.io/podium-dev/podium:v0.3.0"
	s3URI        = "s3://ml-artifacts/battle-winner/7/"
	digest       = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// container is a prediction server container with a port, a user env var and a user mount.
func container(name string) corev1.Container {
	return corev1.Container{
		Name:         name,
		Image:        "ghcr.io/acme/" + name + ":1.2",
		Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		Env:          []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}},
	}
}

// servedModel is a RegisteredModel with spec.serving and a template holding one container.
func servedModel(tweaks ...func(*mlv1.RegisteredModel)) *mlv1.RegisteredModel {
	m := &mlv1.RegisteredModel{
		TypeMeta:   metav1.TypeMeta{APIVersion: mlv1.GroupVersion.String(), Kind: "RegisteredModel"},
		ObjectMeta: metav1.ObjectMeta{Name: "battle-winner", Namespace: "ml", UID: types.UID("4c1d-uid")},
		Spec: mlv1.RegisteredModelSpec{Serving: &mlv1.Serving{
			Replicas:                new(int32(3)),
			ProgressDeadlineSeconds: new(int32(300)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      map[string]string{"app": "battle", "team": "ml"},
					Annotations: map[string]string{"prometheus.io/scrape": "true"},
				},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{container("server")},
					Volumes: []corev1.Volume{{Name: "cache",
						VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		}},
	}
	for _, tweak := range tweaks {
		tweak(m)
	}
	return m
}

func withFetch(on bool) func(*mlv1.RegisteredModel) {
	return func(m *mlv1.RegisteredModel) { m.Spec.Serving.Fetch = new(on) }
}

func withContainers(cs ...corev1.Container) func(*mlv1.RegisteredModel) {
	return func(m *mlv1.RegisteredModel) { m.Spec.Serving.Template.Spec.Containers = cs }
}

// version is ModelVersion n of the model, with its bundle at uri and, when not empty, a digest.
func version(n int64, uri, digest string) *mlv1.ModelVersion {
	return &mlv1.ModelVersion{
		ObjectMeta: metav1.ObjectMeta{Name: "battle-winner-v7", Namespace: "ml"},
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: "battle-winner",
			Version:         n,
			Artifact:        mlv1.Artifact{URI: uri, Digest: digest},
		},
	}
}

func render(t *testing.T, m *mlv1.RegisteredModel, v *mlv1.ModelVersion) *appsv1.Deployment {
	t.Helper()
	d, err := Deployment(Target{Model: m, Version: v, FetcherImage: fetcherImage})
	if err != nil {
		t.Fatalf("Deployment: %v", err)
	}
	if d == nil {
		t.Fatal("Deployment returned nil without an error")
	}
	return d
}

// --- lookups ---

func envVar(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func envCount(c corev1.Container, name string) int {
	n := 0
	for _, e := range c.Env {
		if e.Name == name {
			n++
		}
	}
	return n
}

func volume(s corev1.PodSpec, name string) *corev1.Volume {
	for i := range s.Volumes {
		if s.Volumes[i].Name == name {
			return &s.Volumes[i]
		}
	}
	return nil
}

func mount(c corev1.Container, name string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func initContainer(s corev1.PodSpec, name string) *corev1.Container {
	for i := range s.InitContainers {
		if s.InitContainers[i].Name == name {
			return &s.InitContainers[i]
		}
	}
	return nil
}

// fetcherOf returns the fetch init container, failing the test when there is none.
func fetcherOf(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	c := initContainer(d.Spec.Template.Spec, FetchContainerName)
	if c == nil {
		t.Fatalf("no %s init container; init containers: %v", FetchContainerName, d.Spec.Template.Spec.InitContainers)
	}
	return *c
}

func expectEnv(t *testing.T, c corev1.Container, name, want string) {
	t.Helper()
	if got, ok := envVar(c, name); !ok || got != want {
		t.Errorf("container %s: %s = %q (set: %v), want %q", c.Name, name, got, ok, want)
	}
	if n := envCount(c, name); n > 1 {
		t.Errorf("container %s: %s is set %d times", c.Name, name, n)
	}
}

func expectNoEnv(t *testing.T, c corev1.Container, name string) {
	t.Helper()
	if got, ok := envVar(c, name); ok {
		t.Errorf("container %s: %s = %q, want it unset", c.Name, name, got)
	}
}

func expectNoFetcher(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if c := initContainer(d.Spec.Template.Spec, FetchContainerName); c != nil {
		t.Errorf("unexpected %s init container with args %q", FetchContainerName, c.Args)
	}
}

func expectOwner(t *testing.T, obj metav1.Object, m *mlv1.RegisteredModel) {
	t.Helper()
	want := []metav1.OwnerReference{{
		APIVersion:         "ml.podium.dev/v1alpha1",
		Kind:               "RegisteredModel",
		Name:               m.Name,
		UID:                m.UID,
		Controller:         new(true),
		BlockOwnerDeletion: new(true),
	}}
	if got := obj.GetOwnerReferences(); !reflect.DeepEqual(got, want) {
		t.Errorf("owner references = %+v, want %+v", got, want)
	}
}

func expectLabels(t *testing.T, obj metav1.Object, m *mlv1.RegisteredModel) {
	t.Helper()
	want := map[string]string{
		"ml.podium.dev/registered-model": m.Name,
		"app.kubernetes.io/component":    "predictor",
		"app.kubernetes.io/managed-by":   "podium",
	}
	if got := obj.GetLabels(); !reflect.DeepEqual(got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
}

// --- Deployment ---

// deploymentCase renders model (servedModel() when nil) with version (version 7 of s3URI when
// nil) and checks the Deployment.
type deploymentCase struct {
	name    string
	model   *mlv1.RegisteredModel
	version *mlv1.ModelVersion
	check   func(t *testing.T, m *mlv1.RegisteredModel, d *appsv1.Deployment)
}

func runDeploymentCases(t *testing.T, cases []deploymentCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, v := tc.model, tc.version
			if m == nil {
				m = servedModel()
			}
			if v == nil {
				v = version(7, s3URI, "")
			}
			tc.check(t, m, render(t, m, v))
		})
	}
}

// TestDeploymentMetadata checks the Deployment's identity, ownership and scale.
func TestDeploymentMetadata(t *testing.T) {
	cases := []deploymentCase{
		{
			name: "the deployment is named after the model and lives in its namespace",
			check: func(t *testing.T, m *mlv1.RegisteredModel, d *appsv1.Deployment) {
				if d.Name != "battle-winner-predictor" || d.Name != DeploymentName(m.Name) {
					t.Errorf("name = %q, want battle-winner-predictor", d.Name)
				}
				if d.Namespace != "ml" {
					t.Errorf("namespace = %q, want ml", d.Namespace)
				}
				if d.APIVersion != "apps/v1" || d.Kind != "Deployment" {
					t.Errorf("type = %s %s, want apps/v1 Deployment", d.APIVersion, d.Kind)
				}
			},
		},
		{
			name: "the deployment carries podium's labels and selects the model's predictor pods",
			check: func(t *testing.T, m *mlv1.RegisteredModel, d *appsv1.Deployment) {
				expectLabels(t, d, m)
				want := map[string]string{
					"ml.podium.dev/registered-model": "battle-winner",
					"app.kubernetes.io/component":    "predictor",
				}
				if !reflect.DeepEqual(Selector(m.Name), want) {
					t.Errorf("Selector = %v, want %v", Selector(m.Name), want)
				}
				if d.Spec.Selector == nil || !reflect.DeepEqual(d.Spec.Selector.MatchLabels, want) {
					t.Errorf("selector = %v, want match labels %v", d.Spec.Selector, want)
				}
				if d.Spec.Selector != nil && len(d.Spec.Selector.MatchExpressions) != 0 {
					t.Errorf("selector has match expressions %v", d.Spec.Selector.MatchExpressions)
				}
				for k, v := range want {
					if got := d.Spec.Template.Labels[k]; got != v {
						t.Errorf("pod label %s = %q, want %q: the selector would not match the pods", k, got, v)
					}
				}
			},
		},
		{
			name: "the deployment is controlled by its registered model",
			check: func(t *testing.T, m *mlv1.RegisteredModel, d *appsv1.Deployment) {
				expectOwner(t, d, m)
			},
		},
		{
			name: "replicas and the progress deadline come from spec.serving",
			model: servedModel(func(m *mlv1.RegisteredModel) {
				m.Spec.Serving.Replicas = new(int32(5))
				m.Spec.Serving.ProgressDeadlineSeconds = new(int32(120))
			}),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				if d.Spec.Replicas == nil || *d.Spec.Replicas != 5 {
					t.Errorf("replicas = %v, want 5", d.Spec.Replicas)
				}
				if p := d.Spec.ProgressDeadlineSeconds; p == nil || *p != 120 {
					t.Errorf("progressDeadlineSeconds = %v, want 120", p)
				}
			},
		},
		{
			name: "unset replicas and progress deadline are left to the API server's defaults",
			model: servedModel(func(m *mlv1.RegisteredModel) {
				m.Spec.Serving.Replicas = nil
				m.Spec.Serving.ProgressDeadlineSeconds = nil
			}),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				if d.Spec.Replicas != nil || d.Spec.ProgressDeadlineSeconds != nil {
					t.Errorf("replicas = %v, progressDeadlineSeconds = %v, want both unset",
						d.Spec.Replicas, d.Spec.ProgressDeadlineSeconds)
				}
			},
		},
	}
	runDeploymentCases(t, cases)
}

// TestDeploymentPodTemplate checks what Podium adds to the user's pod template, and what it keeps.
func TestDeploymentPodTemplate(t *testing.T) {
	cases := []deploymentCase{
		{
			name: "the pod template keeps the user's labels, annotations, containers, ports, volumes and env vars",
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				tmpl := d.Spec.Template
				if tmpl.Labels["app"] != "battle" || tmpl.Labels["team"] != "ml" {
					t.Errorf("pod labels = %v, want the user's app=battle and team=ml kept", tmpl.Labels)
				}
				if tmpl.Annotations["prometheus.io/scrape"] != "true" {
					t.Errorf("pod annotations = %v, want the user's prometheus.io/scrape kept", tmpl.Annotations)
				}
				if len(tmpl.Spec.Containers) != 1 {
					t.Fatalf("containers = %d, want the user's one", len(tmpl.Spec.Containers))
				}
				c := tmpl.Spec.Containers[0]
				if c.Name != "server" || c.Image != "ghcr.io/acme/server:1.2" {
					t.Errorf("container = %s %s, want server ghcr.io/acme/server:1.2", c.Name, c.Image)
				}
				if want := []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}; !reflect.DeepEqual(c.Ports, want) {
					t.Errorf("ports = %v, want %v", c.Ports, want)
				}
				if len(c.Env) == 0 || c.Env[0] != (corev1.EnvVar{Name: "LOG_LEVEL", Value: "debug"}) {
					t.Errorf("env = %v, want the user's LOG_LEVEL=debug first", c.Env)
				}
				if m := mount(c, "cache"); m == nil || m.MountPath != "/cache" {
					t.Errorf("mounts = %v, want the user's cache at /cache", c.VolumeMounts)
				}
				if v := volume(tmpl.Spec, "cache"); v == nil || v.EmptyDir == nil {
					t.Errorf("volumes = %v, want the user's cache emptyDir", tmpl.Spec.Volumes)
				}
			},
		},
		{
			name:    "the pod template names the version it serves",
			version: version(42, s3URI, ""),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				if got := d.Spec.Template.Annotations["ml.podium.dev/version"]; got != "42" {
					t.Errorf("version annotation = %q, want 42", got)
				}
			},
		},
		{
			name:  "every container gets the model's environment",
			model: servedModel(withContainers(container("server"), container("sidecar"))),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				if len(d.Spec.Template.Spec.Containers) != 2 {
					t.Fatalf("containers = %d, want 2", len(d.Spec.Template.Spec.Containers))
				}
				for _, c := range d.Spec.Template.Spec.Containers {
					expectEnv(t, c, "MODEL_NAME", "battle-winner")
					expectEnv(t, c, "MODEL_VERSION", "7")
					expectEnv(t, c, "MODEL_STAGE", "Production")
					expectEnv(t, c, "MODEL_URI", s3URI)
					expectEnv(t, c, "MODEL_PATH", "/var/podium/model")
					expectEnv(t, c, "LOG_LEVEL", "debug")
					m := mount(c, "podium-model")
					if m == nil || m.MountPath != "/var/podium" || !m.ReadOnly {
						t.Errorf("container %s: podium-model mount = %+v, want read-only at /var/podium", c.Name, m)
					}
				}
			},
		},
		{
			name: "a user env var named MODEL_URI is replaced, not duplicated",
			model: servedModel(func(m *mlv1.RegisteredModel) {
				c := &m.Spec.Serving.Template.Spec.Containers[0]
				c.Env = []corev1.EnvVar{
					{Name: "MODEL_URI", Value: "s3://stale/1/"},
					{Name: "LOG_LEVEL", Value: "debug"},
				}
			}),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				expectEnv(t, c, "MODEL_URI", s3URI)
				expectEnv(t, c, "LOG_LEVEL", "debug")
			},
		},
	}
	runDeploymentCases(t, cases)
}

// TestDeploymentFetcher checks the init container that fetches the bundle, and fetch=false.
func TestDeploymentFetcher(t *testing.T) {
	cases := []deploymentCase{
		{
			name: "the fetcher downloads the bundle into the shared volume without a digest",
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				f := fetcherOf(t, d)
				if f.Image != fetcherImage {
					t.Errorf("fetcher image = %q, want %q", f.Image, fetcherImage)
				}
				if !slices.Equal(f.Command, []string{"/manager"}) {
					t.Errorf("fetcher command = %q, want [/manager]", f.Command)
				}
				if f.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
					t.Errorf("fetcher termination message policy = %q, want the log tail on error",
						f.TerminationMessagePolicy)
				}
				want := []string{"fetch", "--uri", s3URI, "--dest", "/var/podium/model"}
				if !slices.Equal(f.Args, want) {
					t.Errorf("fetcher args = %q, want %q", f.Args, want)
				}
				wantMounts := []corev1.VolumeMount{{Name: "podium-model", MountPath: "/var/podium"}}
				if !reflect.DeepEqual(f.VolumeMounts, wantMounts) {
					t.Errorf("fetcher mounts = %+v, want %+v (writable)", f.VolumeMounts, wantMounts)
				}
				v := volume(d.Spec.Template.Spec, "podium-model")
				if v == nil || v.EmptyDir == nil || v.PersistentVolumeClaim != nil {
					t.Errorf("podium-model volume = %+v, want an emptyDir", v)
				}
			},
		},
		{
			name:    "the fetcher verifies the digest when the version has one",
			version: version(7, s3URI, digest),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				want := []string{"fetch", "--uri", s3URI, "--dest", "/var/podium/model", "--digest", digest}
				if f := fetcherOf(t, d); !slices.Equal(f.Args, want) {
					t.Errorf("fetcher args = %q, want %q", f.Args, want)
				}
			},
		},
		{
			name:  "the storage secret is given to the fetcher only",
			model: servedModel(func(m *mlv1.RegisteredModel) { m.Spec.Serving.StorageSecretName = "s3-credentials" }),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				want := []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "s3-credentials"},
				}}}
				if f := fetcherOf(t, d); !reflect.DeepEqual(f.EnvFrom, want) {
					t.Errorf("fetcher envFrom = %+v, want the secret s3-credentials", f.EnvFrom)
				}
				for _, c := range d.Spec.Template.Spec.Containers {
					if len(c.EnvFrom) != 0 {
						t.Errorf("container %s got envFrom %+v; the credentials are the fetcher's only", c.Name, c.EnvFrom)
					}
				}
			},
		},
		{
			name: "without a storage secret the fetcher gets no envFrom",
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				if f := fetcherOf(t, d); len(f.EnvFrom) != 0 {
					t.Errorf("fetcher envFrom = %+v, want none", f.EnvFrom)
				}
			},
		},
		{
			name: "the user's init containers are kept and run before the fetcher",
			model: servedModel(func(m *mlv1.RegisteredModel) {
				m.Spec.Serving.Template.Spec.InitContainers = []corev1.Container{{Name: "warmup", Image: "busybox"}}
			}),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				names := make([]string, 0, len(d.Spec.Template.Spec.InitContainers))
				for _, c := range d.Spec.Template.Spec.InitContainers {
					names = append(names, c.Name)
				}
				if want := []string{"warmup", "podium-fetch"}; !slices.Equal(names, want) {
					t.Errorf("init containers = %v, want %v", names, want)
				}
			},
		},
		{
			name:    "with fetch off the predictor gets MODEL_URI and loads the bundle itself",
			model:   servedModel(withFetch(false)),
			version: version(7, s3URI, ""),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				expectNoFetcher(t, d)
				if len(d.Spec.Template.Spec.InitContainers) != 0 {
					t.Errorf("init containers = %v, want none", d.Spec.Template.Spec.InitContainers)
				}
				if v := volume(d.Spec.Template.Spec, "podium-model"); v != nil {
					t.Errorf("unexpected podium-model volume %+v", v)
				}
				c := d.Spec.Template.Spec.Containers[0]
				if m := mount(c, "podium-model"); m != nil {
					t.Errorf("unexpected podium-model mount %+v", m)
				}
				expectNoEnv(t, c, "MODEL_PATH")
				expectEnv(t, c, "MODEL_URI", s3URI)
				expectEnv(t, c, "MODEL_VERSION", "7")
			},
		},
		{
			name:  "fetch set to true behaves as the default",
			model: servedModel(withFetch(true)),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				fetcherOf(t, d)
				expectEnv(t, d.Spec.Template.Spec.Containers[0], "MODEL_PATH", "/var/podium/model")
			},
		},
	}
	runDeploymentCases(t, cases)
}

// TestDeploymentPVC checks bundles on a PersistentVolumeClaim, which are mounted, not fetched.
func TestDeploymentPVC(t *testing.T) {
	cases := []deploymentCase{
		{
			name:    "a pvc bundle is mounted read-only, not fetched",
			version: version(7, "pvc://models/battle-winner/7", ""),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				expectNoFetcher(t, d)
				v := volume(d.Spec.Template.Spec, "podium-model")
				if v == nil || v.PersistentVolumeClaim == nil || v.EmptyDir != nil {
					t.Fatalf("podium-model volume = %+v, want a persistentVolumeClaim", v)
				}
				if pvc := v.PersistentVolumeClaim; pvc.ClaimName != "models" || !pvc.ReadOnly {
					t.Errorf("claim = %+v, want models, read-only", pvc)
				}
				c := d.Spec.Template.Spec.Containers[0]
				m := mount(c, "podium-model")
				if m == nil || m.MountPath != "/var/podium-claim" || !m.ReadOnly {
					t.Errorf("mount = %+v, want read-only at /var/podium-claim", m)
				}
				expectEnv(t, c, "MODEL_PATH", "/var/podium-claim/battle-winner/7")
				expectEnv(t, c, "MODEL_URI", "pvc://models/battle-winner/7")
			},
		},
		{
			name:    "a pvc bundle with a digest is verified in place before the predictor starts",
			model:   servedModel(func(m *mlv1.RegisteredModel) { m.Spec.Serving.StorageSecretName = "unused" }),
			version: version(7, "pvc://models/battle-winner/7/", digest),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				f := fetcherOf(t, d)
				want := []string{"fetch", "--verify", "/var/podium-claim/battle-winner/7", "--digest", digest}
				if !slices.Equal(f.Args, want) {
					t.Errorf("fetcher args = %q, want %q", f.Args, want)
				}
				wantMounts := []corev1.VolumeMount{{Name: "podium-model", MountPath: "/var/podium-claim", ReadOnly: true}}
				if !reflect.DeepEqual(f.VolumeMounts, wantMounts) {
					t.Errorf("fetcher mounts = %+v, want %+v", f.VolumeMounts, wantMounts)
				}
				if f.Image != fetcherImage || f.SecurityContext == nil {
					t.Errorf("verifier = %s with %+v, want the hardened fetcher image", f.Image, f.SecurityContext)
				}
				if v := volume(d.Spec.Template.Spec, "podium-model"); v == nil || v.EmptyDir != nil {
					t.Errorf("podium-model volume = %+v, want the claim, not an emptyDir", v)
				}
				expectEnv(t, d.Spec.Template.Spec.Containers[0], "MODEL_PATH", "/var/podium-claim/battle-winner/7")
			},
		},
		{
			name:    "a pvc bundle at the claim's root is served from the mount path",
			version: version(7, "pvc://models", ""),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				expectEnv(t, d.Spec.Template.Spec.Containers[0], "MODEL_PATH", "/var/podium-claim")
			},
		},
		{
			name:    "a pvc bundle with fetch off and a digest is still mounted, and verified in place",
			model:   servedModel(withFetch(false)),
			version: version(7, "pvc://models/battle-winner/7", digest),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				want := []string{"fetch", "--verify", "/var/podium-claim/battle-winner/7", "--digest", digest}
				if f := fetcherOf(t, d); !slices.Equal(f.Args, want) {
					t.Errorf("fetcher args = %q, want %q", f.Args, want)
				}
				if v := volume(d.Spec.Template.Spec, "podium-model"); v == nil || v.PersistentVolumeClaim == nil {
					t.Errorf("podium-model volume = %+v, want the claim", v)
				}
				expectEnv(t, d.Spec.Template.Spec.Containers[0], "MODEL_PATH", "/var/podium-claim/battle-winner/7")
			},
		},
		{
			name:    "a pvc bundle with fetch off and no digest is mounted, not verified",
			model:   servedModel(withFetch(false)),
			version: version(7, "pvc://models/battle-winner/7", ""),
			check: func(t *testing.T, _ *mlv1.RegisteredModel, d *appsv1.Deployment) {
				expectNoFetcher(t, d)
			},
		},
	}
	runDeploymentCases(t, cases)
}

// TestDeploymentRefusesADigestNothingVerifies checks that fetch off does not skip a digest: the
// predictor would load a bundle that nothing checked.
func TestDeploymentRefusesADigestNothingVerifies(t *testing.T) {
	for _, uri := range []string{s3URI, "https://example.com/bundles/7.tar.gz", "gs://ml/battle-winner/7/"} {
		t.Run(uri, func(t *testing.T) {
			target := Target{Model: servedModel(withFetch(false)), Version: version(7, uri, digest), FetcherImage: fetcherImage}
			d, err := Deployment(target)
			if !errors.Is(err, ErrInvalid) || d != nil {
				t.Fatalf("Deployment = %v, %v; want no Deployment and an error wrapping ErrInvalid", d, err)
			}
			for _, want := range []string{"version 7 has spec.artifact.digest", "spec.serving.fetch is false",
				"either enable spec.serving.fetch", "new version without a digest"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestFetcherIsHardened checks the init container's security context, whether it downloads or
// verifies a claim in place.
func TestFetcherIsHardened(t *testing.T) {
	cases := []struct {
		name    string
		version *mlv1.ModelVersion
	}{
		{"the fetcher that downloads a bundle runs hardened", version(7, s3URI, digest)},
		{"the fetcher that verifies a pvc bundle runs hardened", version(7, "pvc://models/battle-winner/7", digest)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := fetcherOf(t, render(t, servedModel(), tc.version)).SecurityContext
			if sc == nil {
				t.Fatal("fetcher has no security context")
			}
			if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Error("fetcher may run as root")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("fetcher root filesystem is writable")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Error("fetcher may escalate privileges")
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				len(sc.Capabilities.Add) != 0 {
				t.Errorf("fetcher capabilities = %+v, want drop ALL and add none", sc.Capabilities)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Error("fetcher is privileged")
			}
			if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("fetcher seccomp profile = %+v, want RuntimeDefault", sc.SeccompProfile)
			}
		})
	}
}

func TestDeploymentRejectsWhatCannotBeRendered(t *testing.T) {
	cases := []struct {
		name    string
		model   *mlv1.RegisteredModel
		uri     string
		message []string
	}{
		{
			name:    "a template without containers asks for the prediction server's container",
			model:   servedModel(withContainers()),
			uri:     s3URI,
			message: []string{"containers is empty", "add the prediction server's container"},
		},
		{
			name:    "an unsupported scheme is invalid",
			model:   servedModel(),
			uri:     "ftp://artifacts/battle-winner/7/",
			message: []string{"version 7", "unsupported scheme"},
		},
		{
			name:    "an s3 uri without a bucket is invalid",
			model:   servedModel(),
			uri:     "s3:///battle-winner/7/",
			message: []string{"version 7", "names no bucket"},
		},
		{
			name:    "an http uri that is not an archive is invalid",
			model:   servedModel(),
			uri:     "https://example.com/bundles/7/",
			message: []string{"version 7", ".tar"},
		},
		{
			name:    "a pvc uri without a claim is invalid",
			model:   servedModel(),
			uri:     "pvc:///battle-winner/7",
			message: []string{"version 7", "names no claim"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Deployment(Target{Model: tc.model, Version: version(7, tc.uri, ""), FetcherImage: fetcherImage})
			if err == nil {
				t.Fatalf("no error; rendered %s", d.Name)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if d != nil {
				t.Errorf("a Deployment was returned with the error")
			}
			for _, want := range tc.message {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestDeploymentLeavesTheModelUntouched(t *testing.T) {
	cases := []struct {
		name    string
		model   *mlv1.RegisteredModel
		version *mlv1.ModelVersion
	}{
		{"rendering a fetched bundle twice does not grow the model's template", servedModel(), version(7, s3URI, digest)},
		{
			"rendering a pvc bundle twice does not grow the model's template",
			servedModel(withContainers(container("server"), container("sidecar"))),
			version(7, "pvc://models/battle-winner/7", digest),
		},
		{
			"rendering with fetch off twice does not change the model",
			servedModel(withFetch(false), func(m *mlv1.RegisteredModel) {
				m.Spec.Serving.Template.Spec.Containers[0].Env = append(
					m.Spec.Serving.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "MODEL_URI", Value: "old"})
			}),
			version(7, s3URI, ""),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.model.DeepCopy()
			first := render(t, tc.model, tc.version)
			second := render(t, tc.model, tc.version)
			if !reflect.DeepEqual(tc.model, before) {
				t.Errorf("rendering changed the model:\nbefore %+v\nafter  %+v",
					before.Spec.Serving.Template, tc.model.Spec.Serving.Template)
			}
			if !reflect.DeepEqual(first, second) {
				t.Errorf("two renderings differ:\nfirst  %+v\nsecond %+v", first.Spec.Template, second.Spec.Template)
			}
			// Writing into a rendering must not reach the model either.
			first.Spec.Template.Labels["extra"] = "x"
			first.Spec.Template.Spec.Containers[0].Env[0].Value = "changed"
			if !reflect.DeepEqual(tc.model, before) {
				t.Error("the rendering shares maps or slices with the model")
			}
		})
	}
}

// --- Service ---

func TestService(t *testing.T) {
	cases := []struct {
		name  string
		ports []corev1.ContainerPort
		want  []corev1.ServicePort
	}{
		{
			name:  "a named port keeps its name and targets the container port",
			ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			want: []corev1.ServicePort{
				{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)},
			},
		},
		{
			name: "unnamed ports are named after their position",
			ports: []corev1.ContainerPort{
				{ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}, {ContainerPort: 8081},
			},
			want: []corev1.ServicePort{
				{Name: "port-0", Port: 8080, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)},
				{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9090)},
				{Name: "port-2", Port: 8081, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8081)},
			},
		},
		{
			name: "a port's protocol is kept and TCP is the default",
			ports: []corev1.ContainerPort{
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {Name: "grpc", ContainerPort: 9000},
			},
			want: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "grpc", Port: 9000, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9000)},
			},
		},
		{
			name:  "a container without ports gives a service without ports",
			ports: nil,
			want:  nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := servedModel(func(m *mlv1.RegisteredModel) {
				m.Spec.Serving.Template.Spec.Containers[0].Ports = tc.ports
				// Ports of other containers are not exposed.
				sidecar := container("sidecar")
				sidecar.Ports = []corev1.ContainerPort{{Name: "admin", ContainerPort: 15000}}
				m.Spec.Serving.Template.Spec.Containers = append(m.Spec.Serving.Template.Spec.Containers, sidecar)
			})
			svc := Service(m)
			if !reflect.DeepEqual(svc.Spec.Ports, tc.want) {
				t.Errorf("ports = %+v\nwant    %+v", svc.Spec.Ports, tc.want)
			}
		})
	}
}

func TestServiceMetadata(t *testing.T) {
	cases := []struct {
		name  string
		model *mlv1.RegisteredModel
	}{
		{"the service of a served model fronts its predictor pods", servedModel()},
		{"a model without containers still gets a service, without ports", servedModel(withContainers())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := Service(tc.model)
			if svc.Name != "battle-winner-predictor" || svc.Name != ServiceName(tc.model.Name) {
				t.Errorf("name = %q, want battle-winner-predictor", svc.Name)
			}
			if svc.Namespace != "ml" {
				t.Errorf("namespace = %q, want ml", svc.Namespace)
			}
			if svc.APIVersion != "v1" || svc.Kind != "Service" {
				t.Errorf("type = %s %s, want v1 Service", svc.APIVersion, svc.Kind)
			}
			if !reflect.DeepEqual(svc.Spec.Selector, Selector(tc.model.Name)) {
				t.Errorf("selector = %v, want %v", svc.Spec.Selector, Selector(tc.model.Name))
			}
			expectLabels(t, svc, tc.model)
			expectOwner(t, svc, tc.model)
			if len(tc.model.Spec.Serving.Template.Spec.Containers) == 0 && len(svc.Spec.Ports) != 0 {
				t.Errorf("ports = %v, want none", svc.Spec.Ports)
			}
		})
	}
}

func TestStagingDeploymentServesTheCandidateApart(t *testing.T) {
	m := servedModel()
	d, err := Deployment(Target{Model: m, Version: version(8, s3URI, ""), FetcherImage: fetcherImage, Staging: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "battle-winner-predictor-staging" {
		t.Errorf("name = %s", d.Name)
	}
	if got := d.Spec.Selector.MatchLabels; !maps.Equal(got, StagingSelector(m.Name)) || maps.Equal(got, Selector(m.Name)) {
		t.Errorf("selector = %v: it must differ from the Production one, or the two Deployments share pods", got)
	}
	if *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", *d.Spec.Replicas)
	}
	expectEnv(t, d.Spec.Template.Spec.Containers[0], "MODEL_STAGE", "Staging")
	svc := StagingService(m)
	if svc.Name != d.Name || !maps.Equal(svc.Spec.Selector, StagingSelector(m.Name)) {
		t.Errorf("staging Service %s selects %v", svc.Name, svc.Spec.Selector)
	}
}
