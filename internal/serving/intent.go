package serving

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AnnotationRendering holds the digest of what Podium last applied to a Deployment or Service.
const AnnotationRendering = "ml.podium.dev/rendering"

// Stamp records the intent in a rendering: an annotation with the digest of everything else it
// sets. A live object that contains the stamped rendering holds what Podium means it to hold,
// and a change of the rendering, a field removed from spec.serving included, changes the digest,
// so it is applied again; server-side apply then drops what Podium no longer sets.
func Stamp(obj client.Object) error {
	annotations := obj.GetAnnotations()
	delete(annotations, AnnotationRendering)
	obj.SetAnnotations(annotations)
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	obj.SetAnnotations(merged(annotations, map[string]string{AnnotationRendering: hex.EncodeToString(sum[:])}))
	return nil
}
