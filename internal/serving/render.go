// Package serving renders the prediction Deployment and Service of a RegisteredModel and reads
// back what the Deployment reports: which version serves, and whether a rollout failed. It is
// pure: the controller applies what it renders.
package serving

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/bundleuri"
)

// Labels and annotations Podium puts on what it renders.
const (
	LabelModel     = "ml.podium.dev/registered-model"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AnnotationVersion on the pod template names the version the pods serve.
	AnnotationVersion = "ml.podium.dev/version"
	// LabelVersion and LabelTrack are on the prediction pods of a model with spec.serving.rollout,
	// for the analysis' queries: the version the pod serves, and stable or canary.
	LabelVersion     = "ml.podium.dev/version"
	LabelTrack       = "ml.podium.dev/track"
	TrackStable      = "stable"
	TrackCanary      = "canary"
	componentValue   = "predictor"
	stagingComponent = "predictor-staging"
	managedByValue   = "podium"
)

// Names of what Podium adds to the pod template.
const (
	FetchContainerName = "podium-fetch"
	VolumeName         = "podium-model"
	// MountPath is where the bundle volume is mounted; the bundle is in its model/ directory, so
	// the fetcher can install it atomically by a rename inside the volume.
	MountPath = "/var/podium"
	// ModelPath is MODEL_PATH for fetched bundles.
	ModelPath = MountPath + "/model"
	// ClaimMountPath is where a pvc:// claim is mounted, read-only.
	ClaimMountPath = "/var/podium-claim"
	// envModelPath names the variable that tells the predictor where the bundle is.
	envModelPath = "MODEL_PATH"
)

// DeploymentName is the prediction Deployment's name for a model.
func DeploymentName(model string) string { return model + "-predictor" }

// ServiceName is the prediction Service's name for a model.
func ServiceName(model string) string { return model + "-predictor" }

// StagingName is the name of the staging Deployment and Service, which serve the newest Staging
// version when spec.serving.staging is set.
func StagingName(model string) string { return model + "-predictor-staging" }

// CanaryName is the name of the canary Deployment, which runs the candidate of a canary rollout
// behind the prediction Service.
func CanaryName(model string) string { return model + "-predictor-canary" }

// Target is what the Deployment must serve: the Production version of a model.
type Target struct {
	Model   *mlv1.RegisteredModel
	Version *mlv1.ModelVersion
	// Staging renders the staging Deployment, for the newest Staging version, instead of the
	// Production one: its own name and selector, MODEL_STAGE=Staging and one replica.
	Staging bool
	// Canary renders the canary Deployment, for the candidate of a canary rollout: its own name
	// and selector, pods the prediction Service selects too, and MODEL_STAGE=Staging.
	Canary bool
	// Replicas, when set, replaces spec.serving.replicas: the shares of a canary rollout.
	Replicas *int32
	// FetcherImage runs `manager fetch` in the init container.
	FetcherImage string
	// InsecureRegistries are the registries (HOST[:PORT]) the fetcher reaches over plain HTTP:
	// an oci:// bundle on one of them is fetched with --insecure-registry.
	InsecureRegistries []string
}

// ErrInvalid marks a spec.serving that cannot be rendered; the controller reports it as a
// condition and waits for a change.
var ErrInvalid = errors.New("invalid spec.serving")

// Selector is the Deployment's and the Service's pod selector for a model.
func Selector(model string) map[string]string {
	return map[string]string{LabelModel: model, LabelComponent: componentValue}
}

// StagingSelector is the staging Deployment's and Service's pod selector for a model.
func StagingSelector(model string) map[string]string {
	return map[string]string{LabelModel: model, LabelComponent: stagingComponent}
}

// CanarySelector is the canary Deployment's selector for a model. Its pods also match the
// prediction Service's selector.
func CanarySelector(model string) map[string]string {
	return merged(Selector(model), map[string]string{LabelTrack: TrackCanary})
}

// names returns the Deployment name, the selector and the stage of what t renders.
func (t Target) names() (string, map[string]string, mlv1.Stage) {
	switch {
	case t.Staging:
		return StagingName(t.Model.Name), StagingSelector(t.Model.Name), mlv1.StageStaging
	case t.Canary:
		return CanaryName(t.Model.Name), CanarySelector(t.Model.Name), mlv1.StageStaging
	}
	return DeploymentName(t.Model.Name), Selector(t.Model.Name), mlv1.StageProduction
}

// podLabels are the labels of t's pods beyond the selector: with spec.serving.rollout, the
// version and the track, for the analysis' queries. They are left out without it, so that
// prediction pods do not restart when Podium is upgraded.
func (t Target) podLabels() map[string]string {
	if t.Staging || t.Model.Spec.Serving.Rollout == nil {
		return nil
	}
	track := TrackStable
	if t.Canary {
		track = TrackCanary
	}
	return map[string]string{LabelVersion: strconv.FormatInt(t.Version.Spec.Version, 10), LabelTrack: track}
}

// Deployment renders the prediction Deployment for t: the user's template, with the model's
// environment, the fetcher init container and the bundle volume added. It sets only what Podium
// owns, so that server-side apply leaves every other field to whoever set it.
func Deployment(t Target) (*appsv1.Deployment, error) {
	s := t.Model.Spec.Serving
	if len(s.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%w: spec.serving.template.spec.containers is empty; add the prediction server's container", ErrInvalid)
	}
	if err := reservedNames(s.Template.Spec); err != nil {
		return nil, err
	}
	loc, err := bundleuri.Parse(t.Version.Spec.Artifact.URI)
	if err != nil {
		return nil, fmt.Errorf("%w: version %d: %w", ErrInvalid, t.Version.Spec.Version, err)
	}
	fetch := s.Fetch == nil || *s.Fetch
	digest := t.Version.Spec.Artifact.Digest
	if !fetch && digest != "" && loc.Scheme != bundleuri.SchemePVC {
		// A digest promises that the bytes served are the bytes registered. With fetch off the
		// predictor downloads the bundle itself, and checking a copy of our own would prove
		// nothing about the one it loads; serving unchecked would break the promise silently.
		// A mounted pvc:// bundle is the one the predictor reads, so it is verified below.
		return nil, fmt.Errorf("%w: version %d has spec.artifact.digest, but spec.serving.fetch is false, so nothing "+
			"could verify the bundle the predictor downloads itself; either enable spec.serving.fetch, or register "+
			"the bundle in a new version without a digest", ErrInvalid, t.Version.Spec.Version)
	}
	imageVolume := s.BundleMount == mlv1.BundleMountImageVolume
	if imageVolume && loc.Scheme != bundleuri.SchemeOCI {
		// The schema cannot see the versions, so this is the first place that can say it.
		return nil, fmt.Errorf("%w: spec.serving.bundleMount is ImageVolume, which mounts only oci:// bundles, and version %d's "+
			"bundle is %s; push the bundle to a registry (kubectl podium register --push DIR --to oci://...) as a new version, "+
			"or set spec.serving.bundleMount to InitContainer", ErrInvalid, t.Version.Spec.Version, loc.Scheme+"://")
	}
	name, selector, stage := t.names()

	tmpl := *s.Template.DeepCopy()
	tmpl.Labels = merged(merged(tmpl.Labels, selector), t.podLabels())
	tmpl.Annotations = merged(tmpl.Annotations, map[string]string{
		AnnotationVersion: strconv.FormatInt(t.Version.Spec.Version, 10),
	})

	env := []corev1.EnvVar{
		{Name: "MODEL_NAME", Value: t.Model.Name},
		{Name: "MODEL_VERSION", Value: strconv.FormatInt(t.Version.Spec.Version, 10)},
		{Name: "MODEL_STAGE", Value: string(stage)},
		{Name: "MODEL_URI", Value: t.Version.Spec.Artifact.URI},
	}
	var mounts []corev1.VolumeMount
	switch {
	case imageVolume:
		// The kubelet pulls the artifact by the URI's digest, and the runtime checks every blob
		// against the manifest it pins: the pin is the verification, so no init container runs.
		tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{
			Image: &corev1.ImageVolumeSource{Reference: loc.OCI.String(), PullPolicy: corev1.PullIfNotPresent},
		}})
		mounts = []corev1.VolumeMount{{Name: VolumeName, MountPath: ModelPath, ReadOnly: true}}
		env = append(env, corev1.EnvVar{Name: envModelPath, Value: ModelPath})
	case loc.Scheme == bundleuri.SchemePVC:
		// A claim is mounted, not downloaded; with a digest the fetcher verifies it first, with
		// fetch on or off: what it checks is what the predictor reads.
		tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: loc.Bucket, ReadOnly: true},
		}})
		mounts = []corev1.VolumeMount{{Name: VolumeName, MountPath: ClaimMountPath, ReadOnly: true}}
		path := strings.TrimSuffix(ClaimMountPath+"/"+loc.Prefix, "/")
		env = append(env, corev1.EnvVar{Name: envModelPath, Value: path})
		if digest != "" {
			tmpl.Spec.InitContainers = append(tmpl.Spec.InitContainers,
				fetcher(t, []string{"fetch", "--verify", path, "--digest", digest}, mounts))
		}
	case fetch:
		tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: VolumeName,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = []corev1.VolumeMount{{Name: VolumeName, MountPath: MountPath, ReadOnly: true}}
		env = append(env, corev1.EnvVar{Name: envModelPath, Value: ModelPath})
		args := []string{"fetch", "--uri", t.Version.Spec.Artifact.URI, "--dest", ModelPath}
		if digest != "" {
			args = append(args, "--digest", digest)
		}
		if loc.Scheme == bundleuri.SchemeOCI && slices.Contains(t.InsecureRegistries, loc.OCI.Registry) {
			args = append(args, "--insecure-registry", loc.OCI.Registry)
		}
		writable := []corev1.VolumeMount{{Name: VolumeName, MountPath: MountPath}}
		tmpl.Spec.InitContainers = append(tmpl.Spec.InitContainers, fetcher(t, args, writable))
	}
	for i := range tmpl.Spec.Containers {
		c := &tmpl.Spec.Containers[i]
		c.Env = withEnv(c.Env, env)
		c.VolumeMounts = append(c.VolumeMounts, mounts...)
	}

	replicas := s.Replicas
	switch {
	case t.Staging:
		replicas = new(int32(1)) // a candidate to try, not to carry the load
	case t.Replicas != nil:
		replicas = t.Replicas
	}
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objectMeta(t.Model, name, selector),
		Spec: appsv1.DeploymentSpec{
			Replicas:                replicas,
			Selector:                &metav1.LabelSelector{MatchLabels: selector},
			Template:                tmpl,
			ProgressDeadlineSeconds: s.ProgressDeadlineSeconds,
		},
	}
	return d, nil
}

// reservedNames refuses a template that uses the names of what Podium adds to it: server-side
// apply cannot merge two list entries with one name.
func reservedNames(spec corev1.PodSpec) error {
	for _, v := range spec.Volumes {
		if v.Name == VolumeName {
			return fmt.Errorf("%w: spec.serving.template.spec.volumes has a volume named %s, the name of the volume "+
				"Podium adds for the bundle; rename it", ErrInvalid, VolumeName)
		}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Name == FetchContainerName {
			return fmt.Errorf("%w: spec.serving.template has a container named %s, the name of the init container "+
				"Podium adds to fetch the bundle; rename it", ErrInvalid, FetchContainerName)
		}
	}
	return nil
}

// fetcher is the init container that downloads or verifies the bundle.
func fetcher(t Target, args []string, mounts []corev1.VolumeMount) corev1.Container {
	c := corev1.Container{
		Name:                     FetchContainerName,
		Image:                    t.FetcherImage,
		Command:                  []string{"/manager"},
		Args:                     args,
		VolumeMounts:             mounts,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             new(true),
			ReadOnlyRootFilesystem:   new(true),
			AllowPrivilegeEscalation: new(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	if name := t.Model.Spec.Serving.StorageSecretName; name != "" {
		c.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name},
		}}}
	}
	return c
}

// Service renders the Service in front of the prediction pods: one port per port of the first
// container, named as there.
func Service(model *mlv1.RegisteredModel) *corev1.Service {
	return service(model, ServiceName(model.Name), Selector(model.Name))
}

// StagingService renders the Service in front of the staging pods.
func StagingService(model *mlv1.RegisteredModel) *corev1.Service {
	return service(model, StagingName(model.Name), StagingSelector(model.Name))
}

func service(model *mlv1.RegisteredModel, name string, selector map[string]string) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(model, name, selector),
		Spec:       corev1.ServiceSpec{Selector: selector},
	}
	containers := model.Spec.Serving.Template.Spec.Containers
	if len(containers) == 0 {
		return svc
	}
	for i, p := range containers[0].Ports {
		name := p.Name
		if name == "" {
			name = "port-" + strconv.Itoa(i)
		}
		protocol := p.Protocol
		if protocol == "" {
			protocol = corev1.ProtocolTCP
		}
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: name, Port: p.ContainerPort, Protocol: protocol, TargetPort: intstr.FromInt32(p.ContainerPort),
		})
	}
	return svc
}

func objectMeta(model *mlv1.RegisteredModel, name string, selector map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       model.Namespace,
		Labels:          merged(selector, map[string]string{LabelManagedBy: managedByValue}),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(model, mlv1.GroupVersion.WithKind("RegisteredModel"))},
	}
}

// withEnv sets vars in env, replacing variables of the same name the template may hold.
func withEnv(env, vars []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env)+len(vars))
	for _, e := range env {
		if !hasVar(vars, e.Name) {
			out = append(out, e)
		}
	}
	return append(out, vars...)
}

func hasVar(vars []corev1.EnvVar, name string) bool {
	return slices.ContainsFunc(vars, func(v corev1.EnvVar) bool { return v.Name == name })
}

func merged(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}
