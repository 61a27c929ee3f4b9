package serving

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Observed is what a prediction Deployment reports.
type Observed struct {
	// TemplateVersion is the version the Deployment's pod template serves; nil for a template
	// Podium did not render.
	TemplateVersion *int64
	// Serving is true when every pod runs the current template and is available, and no pod of an
	// older template is left.
	Serving bool
	// Failed is true when the rollout of the current template missed its progress deadline.
	Failed        bool
	ReadyReplicas int32
	// UpdatedReplicas and Replicas say how far a rollout has come.
	UpdatedReplicas, Replicas int32
	// CurrentAvailable counts the available pods that run the current template: all available
	// pods once the status describes the current spec and every pod runs its template, else none.
	CurrentAvailable int32
	// steady is true when the status counts at least one available pod and none of a template
	// older than the one it describes, which is the previous one while the status lags the spec.
	steady bool
}

// Observe reads a Deployment's status. A status the Deployment controller has not yet
// written for the current spec counts as neither serving nor failed.
func Observe(d *appsv1.Deployment) Observed {
	o := Observed{ReadyReplicas: d.Status.ReadyReplicas, UpdatedReplicas: d.Status.UpdatedReplicas, Replicas: 1,
		steady: d.Status.AvailableReplicas > 0 && d.Status.UpdatedReplicas == d.Status.Replicas}
	if d.Spec.Replicas != nil {
		o.Replicas = *d.Spec.Replicas
	}
	if v, err := strconv.ParseInt(d.Spec.Template.Annotations[AnnotationVersion], 10, 64); err == nil {
		o.TemplateVersion = &v
	}
	if d.Status.ObservedGeneration < d.Generation {
		return o
	}
	o.Serving = d.Status.UpdatedReplicas == o.Replicas && d.Status.AvailableReplicas == o.Replicas &&
		d.Status.Replicas == o.Replicas
	if d.Status.UpdatedReplicas == d.Status.Replicas {
		o.CurrentAvailable = d.Status.AvailableReplicas
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			o.Failed = true
		}
	}
	return o
}

// Serves is the version every pod of the Deployment serves, given the version it served when
// last observed (before, nil for none). A new version serves once Serving holds. The version
// served before goes on serving while the template still carries it and the status is steady,
// so that a change of the replicas alone, such as a canary's step, does not stop it while the
// status lags the spec or new pods start. Only before tells that change from a new template's:
// a lagging status does not say which template it counts.
func (o Observed) Serves(before *int64) *int64 {
	switch {
	case o.Serving:
		return o.TemplateVersion
	case o.steady && o.TemplateVersion != nil && before != nil && *o.TemplateVersion == *before:
		return before
	}
	return nil
}

// Contains says whether every field set in desired has the same value in observed. The API
// server adds defaults and other managers add fields, which do not count; a list must hold
// desired's items at the same positions. The controller applies a rendering only when the live
// object does not already contain it, so a converged model writes nothing.
func Contains(observed, desired runtime.Object) bool {
	o, err1 := runtime.DefaultUnstructuredConverter.ToUnstructured(observed)
	d, err2 := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err1 != nil || err2 != nil {
		return false
	}
	delete(d, "status")
	return contains(o, d)
}

func contains(observed, desired any) bool {
	switch want := desired.(type) {
	case map[string]any:
		got, ok := observed.(map[string]any)
		if !ok {
			return false // even an empty object must be there: emptyDir: {} says which volume it is
		}
		for k, v := range want {
			if v == nil {
				continue
			}
			if !contains(got[k], v) {
				return false
			}
		}
		return true
	case []any:
		got, ok := observed.([]any)
		if !ok || len(got) < len(want) {
			return false
		}
		for i := range want {
			if !contains(got[i], want[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(observed, desired)
	}
}

// waitingProblems are the reasons a kubelet gives for a container that waits and will not start
// without a change: a missing Secret or ConfigMap, an image that cannot be pulled, a crash loop.
// An image volume that cannot be pulled shows on every container that mounts it, with the
// reasons of an image; one the runtime cannot mount, as CreateContainerError.
var waitingProblems = map[string]bool{
	"CreateContainerConfigError": true, "CreateContainerError": true, "CrashLoopBackOff": true,
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"ImageInspectError": true,
}

// pullProblems are the waiting reasons of an image, or image volume, that cannot be pulled.
var pullProblems = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"ImageInspectError": true,
}

// PodProblem names what keeps the pods of a rollout of version from starting, as their kubelets
// report it: the first pod of that version with a container that waits for a reason that needs a
// change (a storage Secret that does not exist shows here as CreateContainerConfigError), or
// whose init container failed (the fetcher's one-line message). When the bundle's image volume
// is what cannot be pulled or mounted, the message says so and what to check. Empty when there
// is none.
func PodProblem(pods []corev1.Pod, version int64) string {
	want := strconv.FormatInt(version, 10)
	for _, p := range pods {
		if p.Annotations[AnnotationVersion] != want || !p.DeletionTimestamp.IsZero() {
			continue
		}
		for _, s := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			switch {
			case s.State.Waiting != nil && waitingProblems[s.State.Waiting.Reason]:
				w := s.State.Waiting
				return fmt.Sprintf("pod %s, container %s: %s: %s%s", p.Name, s.Name, w.Reason, w.Message, imageVolumeHint(p, w))
			case s.State.Terminated != nil && s.State.Terminated.ExitCode != 0:
				return fmt.Sprintf("pod %s, container %s exited with %d: %s", p.Name, s.Name, s.State.Terminated.ExitCode,
					strings.TrimSpace(s.State.Terminated.Message))
			case s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.ExitCode != 0 && !s.Ready:
				t := s.LastTerminationState.Terminated
				return fmt.Sprintf("pod %s, container %s exited with %d: %s", p.Name, s.Name, t.ExitCode, strings.TrimSpace(t.Message))
			}
		}
	}
	return ""
}

// imageVolumeHint explains a waiting container of a pod that mounts the bundle as an image
// volume: the kubelet names the reference it cannot pull, not the volume, and a runtime without
// image volumes fails only when it creates the container.
func imageVolumeHint(p corev1.Pod, w *corev1.ContainerStateWaiting) string {
	var ref string
	for _, v := range p.Spec.Volumes {
		if v.Name == VolumeName && v.Image != nil {
			ref = v.Image.Reference
		}
	}
	switch {
	case ref == "":
		return ""
	case pullProblems[w.Reason] && strings.Contains(w.Message, ref):
		return " (the node cannot pull the bundle's image volume " + ref + "; check that the registry holds it, " +
			"the pod template's imagePullSecrets, and that the node reaches the registry)"
	case w.Reason == "CreateContainerError":
		return " (the pod mounts the bundle as an image volume: the node's container runtime must support image " +
			"volumes and OCI artifacts, such as containerd 2.1 or later, or CRI-O 1.31 or later; else use " +
			"spec.serving.bundleMount InitContainer)"
	}
	return ""
}
