package serving

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
)

const (
	ociDigest = "sha256:4d12aa0e1c5f0c6b5d0f9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c"
	// ociURI carries a tag before the digest: a note for people, which the rendering drops.
	ociURI    = "oci://registry.ml:5000/ml/battle-winner:v7@" + ociDigest
	ociPinned = "registry.ml:5000/ml/battle-winner@" + ociDigest
)

func withBundleMount(mode mlv1.BundleMount) func(*mlv1.RegisteredModel) {
	return func(m *mlv1.RegisteredModel) { m.Spec.Serving.BundleMount = mode }
}

// TestDeploymentOCIBundleMounts renders an oci:// bundle in both bundle mounts and compares
// what Podium adds to the pod (volumes, init containers, every container's mounts and
// MODEL_PATH) with the whole expected value.
func TestDeploymentOCIBundleMounts(t *testing.T) {
	userVolume := corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	userMount := corev1.VolumeMount{Name: "cache", MountPath: "/cache"}
	emptyDir := corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	imageVolume := corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{
		Image: &corev1.ImageVolumeSource{Reference: ociPinned, PullPolicy: corev1.PullIfNotPresent}}}
	fetchArgs := []string{"fetch", "--uri", ociURI, "--dest", ModelPath, "--digest", digest}

	for _, tc := range []struct {
		name     string
		model    *mlv1.RegisteredModel
		insecure []string
		// want: the volumes, the fetcher's args (nil: no init container), and the mount of the
		// bundle in every container.
		volumes     []corev1.Volume
		fetcherArgs []string
		mount       corev1.VolumeMount
	}{
		{
			name:        "InitContainer fetches the pinned URI and verifies the files' digest",
			model:       servedModel(withBundleMount(mlv1.BundleMountInitContainer)),
			volumes:     []corev1.Volume{userVolume, emptyDir},
			fetcherArgs: fetchArgs,
			mount:       corev1.VolumeMount{Name: VolumeName, MountPath: MountPath, ReadOnly: true},
		},
		{
			name:        "a bundleMount left empty (an object older than the field) fetches as InitContainer does",
			model:       servedModel(),
			volumes:     []corev1.Volume{userVolume, emptyDir},
			fetcherArgs: fetchArgs,
			mount:       corev1.VolumeMount{Name: VolumeName, MountPath: MountPath, ReadOnly: true},
		},
		{
			name:        "a bundle on an insecure registry is fetched over plain HTTP",
			model:       servedModel(),
			insecure:    []string{"zot.local", "registry.ml:5000"},
			volumes:     []corev1.Volume{userVolume, emptyDir},
			fetcherArgs: append(slices.Clip(fetchArgs), "--insecure-registry", "registry.ml:5000"),
			mount:       corev1.VolumeMount{Name: VolumeName, MountPath: MountPath, ReadOnly: true},
		},
		{
			name:        "an insecure registry on another port is not this bundle's",
			model:       servedModel(),
			insecure:    []string{"registry.ml", "registry.ml:5001"},
			volumes:     []corev1.Volume{userVolume, emptyDir},
			fetcherArgs: fetchArgs,
			mount:       corev1.VolumeMount{Name: VolumeName, MountPath: MountPath, ReadOnly: true},
		},
		{
			name:    "ImageVolume mounts the digest-pinned reference read-only at MODEL_PATH, without a fetcher",
			model:   servedModel(withBundleMount(mlv1.BundleMountImageVolume)),
			volumes: []corev1.Volume{userVolume, imageVolume},
			mount:   corev1.VolumeMount{Name: VolumeName, MountPath: ModelPath, ReadOnly: true},
		},
		{
			name:     "ImageVolume ignores the insecure registries: the node's runtime pulls",
			model:    servedModel(withBundleMount(mlv1.BundleMountImageVolume)),
			insecure: []string{"registry.ml:5000"},
			volumes:  []corev1.Volume{userVolume, imageVolume},
			mount:    corev1.VolumeMount{Name: VolumeName, MountPath: ModelPath, ReadOnly: true},
		},
		{
			name: "ImageVolume mounts the bundle into every container",
			model: servedModel(withBundleMount(mlv1.BundleMountImageVolume),
				withContainers(container("server"), container("sidecar"))),
			volumes: []corev1.Volume{userVolume, imageVolume},
			mount:   corev1.VolumeMount{Name: VolumeName, MountPath: ModelPath, ReadOnly: true},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Deployment(Target{Model: tc.model, Version: version(7, ociURI, digest), FetcherImage: fetcherImage,
				InsecureRegistries: tc.insecure})
			if err != nil {
				t.Fatal(err)
			}
			spec := d.Spec.Template.Spec
			if !reflect.DeepEqual(spec.Volumes, tc.volumes) {
				t.Errorf("volumes =\n%+v\nwant\n%+v", spec.Volumes, tc.volumes)
			}
			switch {
			case tc.fetcherArgs == nil && len(spec.InitContainers) != 0:
				t.Errorf("init containers = %+v, want none", spec.InitContainers)
			case tc.fetcherArgs != nil:
				if f := fetcherOf(t, d); !reflect.DeepEqual(f.Args, tc.fetcherArgs) {
					t.Errorf("fetcher args = %q, want %q", f.Args, tc.fetcherArgs)
				}
			}
			if len(spec.Containers) != len(tc.model.Spec.Serving.Template.Spec.Containers) {
				t.Fatalf("%d containers, want the template's %d", len(spec.Containers), len(tc.model.Spec.Serving.Template.Spec.Containers))
			}
			for _, c := range spec.Containers {
				if want := []corev1.VolumeMount{userMount, tc.mount}; !reflect.DeepEqual(c.VolumeMounts, want) {
					t.Errorf("container %s mounts = %+v, want %+v", c.Name, c.VolumeMounts, want)
				}
				expectEnv(t, c, "MODEL_PATH", ModelPath)
				expectEnv(t, c, "MODEL_URI", ociURI)
			}
		})
	}
}

// TestDeploymentImageVolumeNeedsAnOCIBundle: the schema cannot see the Production version's URI,
// so the rendering refuses what an image volume cannot mount, and the model reports it.
func TestDeploymentImageVolumeNeedsAnOCIBundle(t *testing.T) {
	for _, uri := range []string{s3URI, "pvc://models/battle-winner/7", "https://example.com/bundles/7.tar.gz"} {
		t.Run(uri, func(t *testing.T) {
			scheme, _, _ := strings.Cut(uri, "://")
			d, err := Deployment(Target{Model: servedModel(withBundleMount(mlv1.BundleMountImageVolume)),
				Version: version(7, uri, ""), FetcherImage: fetcherImage})
			if !errors.Is(err, ErrInvalid) || d != nil {
				t.Fatalf("Deployment = %v, %v; want no Deployment and an error wrapping ErrInvalid", d, err)
			}
			for _, want := range []string{"bundleMount is ImageVolume", "mounts only oci:// bundles",
				"version 7's bundle is " + scheme + "://", "set spec.serving.bundleMount to InitContainer"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestStagingDeploymentMountsItsImageVolume: the staging Deployment mounts its own version's
// artifact.
func TestStagingDeploymentMountsItsImageVolume(t *testing.T) {
	d, err := Deployment(Target{Model: servedModel(withBundleMount(mlv1.BundleMountImageVolume)),
		Version: version(8, ociURI, ""), FetcherImage: fetcherImage, Staging: true})
	if err != nil {
		t.Fatal(err)
	}
	v := volume(d.Spec.Template.Spec, VolumeName)
	if v == nil || v.Image == nil || v.Image.Reference != ociPinned {
		t.Errorf("staging volume %s = %+v, want the image %s", VolumeName, v, ociPinned)
	}
	expectNoFetcher(t, d)
}
