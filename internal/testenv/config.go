package testenv

import (
	"fmt"
	"os"
	"path/filepath"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// ConfigObjects decodes the objects a kustomize directory of config/ lists as its resources, as
// they are before config/default prefixes their names.
func ConfigObjects(dir string, scheme *k8sruntime.Scheme) ([]client.Object, error) {
	var kustomization struct{ Resources []string }
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(data, &kustomization); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if len(kustomization.Resources) == 0 {
		return nil, fmt.Errorf("%s/kustomization.yaml lists no resources", dir)
	}
	objs := make([]client.Object, 0, len(kustomization.Resources))
	for _, file := range kustomization.Resources {
		obj, err := ConfigObject(filepath.Join(dir, file), scheme)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// ConfigObject decodes the one object of a YAML file of config/.
func ConfigObject(path string, scheme *k8sruntime.Scheme) (client.Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj, _, err := serializer.NewCodecFactory(scheme).UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return obj.(client.Object), nil
}
