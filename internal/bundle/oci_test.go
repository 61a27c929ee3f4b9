package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/podium-dev/podium/internal/testregistry"
)

// battleWinner is a bundle as a training script leaves it.
var battleWinner = map[string]string{"model.pkl": "weights", "scalers.pkl": "scalers", "meta/metadata.pkl": "meta"}

// ociOptions fetch from the test registry, which serves plain HTTP on loopback.
func ociOptions(reg *testregistry.Registry) Options {
	return Options{OCI: OCIOptions{InsecureRegistry: reg.Host}, Network: quick}
}

// push uploads files as a bundle with the code of `kubectl podium push` and returns the pinned URI.
func push(t *testing.T, reg *testregistry.Registry, target string, files map[string]string, creds auth.CredentialFunc) string {
	t.Helper()
	pinned, err := Push(t.Context(), writeBundle(t, files), "oci://"+reg.Host+"/"+target,
		PushOptions{PlainHTTP: true, Credential: creds, Network: quick})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return pinned
}

// pushImage uploads an image of the given layers (tar+gzip blobs) with config, and returns its
// pinned URI.
func pushImage(t *testing.T, reg *testregistry.Registry, repository, configType string, layerType string, layers ...[]byte) string {
	t.Helper()
	repo, err := pushRepository(OCIReference{Registry: reg.Host, Repository: repository}, PushOptions{PlainHTTP: true, Network: quick})
	if err != nil {
		t.Fatal(err)
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: blobDescriptor(configType, config)}
	if err := pushBlob(t.Context(), repo, m.Config, config); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		desc := blobDescriptor(layerType, l)
		if err := pushBlob(t.Context(), repo, desc, l); err != nil {
			t.Fatal(err)
		}
		m.Layers = append(m.Layers, desc)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	desc := blobDescriptor(ocispec.MediaTypeImageManifest, raw)
	if err := repo.PushReference(t.Context(), desc, strings.NewReader(string(raw)), "latest"); err != nil {
		t.Fatal(err)
	}
	return "oci://" + reg.Host + "/" + repository + "@" + desc.Digest.String()
}

func TestFetchOCIModelPack(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	uri := push(t, reg, "ml/battle-winner:v4", battleWinner, nil)
	if !strings.HasPrefix(uri, "oci://"+reg.Host+"/ml/battle-winner@sha256:") {
		t.Fatalf("push printed %q, want the reference pinned by digest", uri)
	}
	opts := ociOptions(reg)
	opts.Digest = digestOf(t, battleWinner)
	dest := newDest(t)
	if err := Fetch(t.Context(), uri, dest, opts); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, battleWinner)

	// The tag resolves to the digest that push printed.
	got, err := ResolveOCI(t.Context(), "oci://"+reg.Host+"/ml/battle-winner:v4", PushOptions{PlainHTTP: true, Network: quick})
	if err != nil {
		t.Fatal(err)
	}
	if want := uri[strings.LastIndex(uri, "@")+1:]; got != want {
		t.Errorf("the tag resolves to %s, want %s", got, want)
	}
}

// A file pushed with `oras push REPO model.pkl` (oras' default media type, the image layer's,
// on an empty config) installs as that file, as oras pull writes it.
func TestFetchOCIInstallsAnOrasPushedFile(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	repo, err := pushRepository(OCIReference{Registry: reg.Host, Repository: "ml/oras"}, PushOptions{PlainHTTP: true, Network: quick})
	if err != nil {
		t.Fatal(err)
	}
	config := []byte("{}")
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.unknown.artifact.v1", Config: blobDescriptor(ocispec.MediaTypeEmptyJSON, config)}
	if err := pushBlob(t.Context(), repo, m.Config, config); err != nil {
		t.Fatal(err)
	}
	layer := blobDescriptor(ocispec.MediaTypeImageLayer, []byte("weights"))
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: "model.pkl"}
	if err := pushBlob(t.Context(), repo, layer, []byte("weights")); err != nil {
		t.Fatal(err)
	}
	m.Layers = []ocispec.Descriptor{layer}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	desc := blobDescriptor(ocispec.MediaTypeImageManifest, raw)
	if err := repo.PushReference(t.Context(), desc, strings.NewReader(string(raw)), "latest"); err != nil {
		t.Fatal(err)
	}
	dest := newDest(t)
	if err := Fetch(t.Context(), "oci://"+reg.Host+"/ml/oras@"+desc.Digest.String(), dest, ociOptions(reg)); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, map[string]string{"model.pkl": "weights"})
}

// A push that the registry cannot take says what to do: log in, with the command, when it asks
// for credentials or refuses them; check the address when nothing answers there.
func TestPushSaysWhatToDo(t *testing.T) {
	const user, password = "trainer", "s3cret-registry-password"
	reg := testregistry.Start(t, testregistry.Options{Users: map[string]string{user: password}})
	dir := writeBundle(t, battleWinner)
	for name, tc := range map[string]struct {
		target string
		creds  auth.CredentialFunc
		want   []string
	}{
		"no credentials": {"oci://" + reg.Host + "/ml/private", nil, []string{
			"the registry asks for credentials, and there are none for " + reg.Host,
			"log in with `docker login " + reg.Host + "` or `oras login " + reg.Host + "`"}},
		"a wrong password": {"oci://" + reg.Host + "/ml/private",
			auth.StaticCredential(reg.Host, auth.Credential{Username: user, Password: "wrong"}), []string{
				"the registry refused the credentials for " + reg.Host + " (HTTP 401 Unauthorized)",
				"log in with `docker login " + reg.Host + "`", "as a user who may push to ml/private"}},
		"nothing listens": {fmt.Sprintf("oci://127.0.0.1:%d/ml/b", closedPort(t)), nil, []string{
			"cannot reach the registry", "connection refused", "check the URI's host and port"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Push(t.Context(), dir, tc.target, PushOptions{PlainHTTP: true, Credential: tc.creds, Network: quick})
			wantError(t, err, tc.want...)
			wantNoSecret(t, err.Error(), password, "wrong")
			if strings.Contains(err.Error(), "basic credential not found") {
				t.Errorf("error %q repeats the client library's words", err)
			}
		})
	}
}

// The same files give the same manifest digest: nothing records the time of a push unless
// PushOptions.Created asks for it (kubectl podium push --created).
func TestPushIsAFunctionOfTheFiles(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	dir := writeBundle(t, battleWinner)
	opts := PushOptions{PlainHTTP: true, Network: quick}
	first, err := Push(t.Context(), dir, "oci://"+reg.Host+"/ml/same:v1", opts)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Push(t.Context(), dir, "oci://"+reg.Host+"/ml/same", opts)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatalf("two pushes of the same files: %s and %s", first, second)
	}
	opts.Created = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	dated, err := Push(t.Context(), dir, "oci://"+reg.Host+"/ml/same:dated", opts)
	if err != nil {
		t.Fatal(err)
	}
	if dated == first {
		t.Fatal("a push with a creation time has the digest of one without")
	}
	repo, err := pushRepository(OCIReference{Registry: reg.Host, Repository: "ml/same"}, PushOptions{PlainHTTP: true, Network: quick})
	if err != nil {
		t.Fatal(err)
	}
	desc, raw, err := repo.FetchReference(t.Context(), "dated")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = raw.Close() }()
	var m ocispec.Manifest
	if err := json.NewDecoder(raw).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Annotations[ocispec.AnnotationCreated] != "2026-12-07T10:00:00Z" || m.ArtifactType != ArtifactTypeModelPack ||
		desc.Digest.String() != dated[strings.LastIndex(dated, "@")+1:] {
		t.Fatalf("the dated manifest %s: annotations %v, artifactType %q", desc.Digest, m.Annotations, m.ArtifactType)
	}
	dest := newDest(t)
	if err := Fetch(t.Context(), first, dest, ociOptions(reg)); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, battleWinner)
}

func TestFetchOCIImageAppliesLayersInOrder(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	base := tarGz(t,
		&tar.Header{Name: "model/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "model/model.pkl", Typeflag: tar.TypeReg},
		&tar.Header{Name: "model/old.pkl", Typeflag: tar.TypeReg},
		&tar.Header{Name: "model/scalers.pkl", Typeflag: tar.TypeReg})
	top := tarGz(t,
		&tar.Header{Name: "model/.wh.old.pkl", Typeflag: tar.TypeReg},
		&tar.Header{Name: "model/scalers.pkl", Typeflag: tar.TypeReg, Size: 0},
		&tar.Header{Name: "model/new.pkl", Typeflag: tar.TypeReg})
	uri := pushImage(t, reg, "ml/image", ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, base, top)
	dest := newDest(t)
	if err := Fetch(t.Context(), uri, dest, ociOptions(reg)); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, map[string]string{
		"model/model.pkl": "model/model.pkl", "model/scalers.pkl": "model/scalers.pkl", "model/new.pkl": "model/new.pkl",
	})
}

// A layer entry that names the bundle's root (".", "sub/..") or a whiteout that removes it
// (".wh..", "sub/.wh...") would replace or erase everything the earlier layers installed: each is
// refused, naming the entry and its layer, and nothing is installed.
func TestFetchOCIImageRefusesEntriesThatNameTheRoot(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	base := tarGz(t, &tar.Header{Name: "model.pkl", Typeflag: tar.TypeReg}, &tar.Header{Name: "sub/a.pkl", Typeflag: tar.TypeReg})
	for _, name := range []string{".", "sub/..", ".wh..", "sub/.wh...", "sub/../.wh.model.pkl/.."} {
		t.Run(name, func(t *testing.T) {
			top := tarGz(t, &tar.Header{Name: name, Typeflag: tar.TypeReg})
			uri := pushImage(t, reg, "ml/root", ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip, base, top)
			dest := newDest(t)
			err := Fetch(t.Context(), uri, dest, ociOptions(reg))
			wantError(t, err, "layer 2 (", fmt.Sprintf("%q", name), "the bundle's root")
			wantNothing(t, dest)
		})
	}
}

func TestFetchOCIFailsWithNothingOnDisk(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	good := push(t, reg, "ml/battle-winner", battleWinner, nil)
	damaged := push(t, reg, "ml/damaged", map[string]string{"model.pkl": "only here", "b.pkl": "b"}, nil)
	reg.DeleteBlob(t, digest.FromString("only here").String())
	helm := pushImage(t, reg, "charts/podium", "application/vnd.cncf.helm.config.v1+json",
		"application/vnd.cncf.helm.chart.content.v1.tar+gzip", tarGz(t, &tar.Header{Name: "Chart.yaml", Typeflag: tar.TypeReg}))
	unknownLayer := pushImage(t, reg, "ml/lz4", ocispec.MediaTypeImageConfig, "application/vnd.oci.image.layer.v1.tar+lz4", []byte("lz4"))
	absent := "oci://" + reg.Host + "/ml/battle-winner@" + digest.FromString("no such manifest").String()

	for name, tc := range map[string]struct {
		uri    string
		digest string
		want   []string
	}{
		"a digest that names no manifest": {absent, "", []string{"the manifest is not in the registry", "404"}},
		"a bundle that is not the registered one": {good, digestOf(t, map[string]string{"model.pkl": "other"}),
			[]string{"does not match spec.artifact.digest"}},
		"the manifest digest given as the bundle digest": {good, good[strings.LastIndex(good, "@")+1:],
			[]string{"spec.artifact.digest is the manifest digest of the URI"}},
		"a blob missing from the registry": {damaged, "", []string{"layer ", "the blob is not in the registry"}},
		"an artifact of another kind":      {helm, "", []string{`"application/vnd.cncf.helm.config.v1+json" is not supported`}},
		"a layer of an unknown media type": {unknownLayer, "", []string{`"application/vnd.oci.image.layer.v1.tar+lz4", which is not supported`}},
	} {
		t.Run(name, func(t *testing.T) {
			opts := ociOptions(reg)
			opts.Digest = tc.digest
			dest := newDest(t)
			err := Fetch(t.Context(), tc.uri, dest, opts)
			wantError(t, err, append([]string{"bundle " + tc.uri + ": "}, tc.want...)...)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
			wantNothing(t, dest)
		})
	}
}

// dockerConfig is a docker config JSON with one registry's credentials.
func dockerConfig(host, user, password string) []byte {
	return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
}

func TestFetchOCIWithCredentials(t *testing.T) {
	const user, password = "trainer", "s3cret-registry-password"
	reg := testregistry.Start(t, testregistry.Options{Users: map[string]string{user: password}})
	uri := push(t, reg, "ml/private", battleWinner, auth.StaticCredential(reg.Host, auth.Credential{Username: user, Password: password}))

	opts := ociOptions(reg)
	opts.OCI.DockerConfig = dockerConfig("http://"+reg.Host+"/v2/", user, password) // a key may be a URL
	dest := newDest(t)
	if err := Fetch(t.Context(), uri, dest, opts); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, dest, battleWinner)

	for name, tc := range map[string]struct {
		config []byte
		want   string
	}{
		"a wrong password": {dockerConfig(reg.Host, user, "wrong"), "the registry refused access to the manifest (HTTP 401"},
		"no credentials":   {nil, "the registry asks for credentials, and there are none for " + reg.Host},
		"another registry's credentials": {dockerConfig("registry.example.com", user, password),
			"the registry asks for credentials, and there are none for " + reg.Host},
	} {
		t.Run(name, func(t *testing.T) {
			opts := ociOptions(reg)
			opts.OCI.DockerConfig = tc.config
			dest := newDest(t)
			err := Fetch(t.Context(), uri, dest, opts)
			wantError(t, err, tc.want, "PODIUM_DOCKER_CONFIG")
			wantNoSecret(t, err.Error(), password, "wrong")
			wantNothing(t, dest)
		})
	}
}

func TestFetchOCIUnreachableRegistryEndsInTime(t *testing.T) {
	pin := "@" + digest.FromString("m").String()
	for name, tc := range map[string]struct {
		registry string
		insecure bool
		want     []string
	}{
		"nothing listens": {fmt.Sprintf("127.0.0.1:%d", closedPort(t)), true, []string{"cannot reach the registry", "connection refused", "gave up after 2 attempts"}},
		"a registry that stalls": {silentListener(t), true, []string{"accepted the connection but did not answer in time",
			"gave up after 2 attempts"}},
		"plain HTTP without --insecure-registry": {testregistry.Start(t, testregistry.Options{}).Host, false,
			[]string{"HTTPS", "pass --insecure-registry 127.0.0.1:"}},
	} {
		t.Run(name, func(t *testing.T) {
			uri := "oci://" + tc.registry + "/ml/battle-winner" + pin
			opts := Options{Network: quick}
			if tc.insecure {
				opts.OCI.InsecureRegistry = tc.registry
			}
			dest := newDest(t)
			start := time.Now()
			err := Fetch(t.Context(), uri, dest, opts)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the fetch failed after %s, want within seconds", took)
			}
			wantError(t, err, append([]string{"bundle " + uri + ": "}, tc.want...)...)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
			wantNothing(t, dest)
		})
	}
}

func TestParseOCIURI(t *testing.T) {
	pin := "@sha256:" + strings.Repeat("ab", 32)
	got, err := ParseURI("oci://127.0.0.1:5000/ml/battle-winner:v4" + pin)
	want := OCIReference{Registry: "127.0.0.1:5000", Repository: "ml/battle-winner", Tag: "v4", Digest: pin[1:]}
	if err != nil || got.OCI != want || got.Scheme != SchemeOCI {
		t.Errorf("ParseURI = %+v, %v; want %+v", got, err, want)
	}
	for uri, want := range map[string]string{
		"oci://registry.example.com/ml/battle-winner:v4": "must be pinned by the manifest's digest",
		"oci://registry.example.com/ml/battle-winner":    "`kubectl podium push` prints the pinned reference",
		"oci://registry.example.com/ML/Battle" + pin:     "write an OCI artifact as oci://REGISTRY[:PORT]/REPOSITORY[:TAG]@sha256:DIGEST",
		"oci://registry.example.com/" + pin:              "write an OCI artifact as",
		"oci://user:pw@registry.example.com/ml/b" + pin:  "takes no credentials",
	} {
		_, err := ParseURI(uri)
		wantError(t, err, want)
	}
}

// lyingRegistry stands in front of reg and changes what it answers for the paths that hold
// target (a manifest or blob digest): lie gets the real body and returns what to send instead.
func lyingRegistry(t *testing.T, reg *testregistry.Registry, target string, lie func([]byte) []byte) string {
	t.Helper()
	upstream, err := url.Parse("http://" + reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !strings.HasSuffix(resp.Request.URL.Path, target) ||
			resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		body = lie(body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// A registry that sends other bytes than the manifest pins, for the manifest or for a layer
// (changed, cut short, or longer), is refused in words that say which object lied and how, and
// nothing is installed.
func TestFetchOCIRefusesARegistryThatLies(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	uri := push(t, reg, "ml/lies", map[string]string{"model.pkl": "the real weights"}, nil)
	manifest := uri[strings.LastIndex(uri, "@")+1:]
	layer := digest.FromString("the real weights").String()
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 1; return b }
	for name, tc := range map[string]struct {
		target string
		lie    func([]byte) []byte
		want   []string
	}{
		"a changed manifest": {manifest, func(b []byte) []byte { return bytes.Replace(b, []byte(`"mediaType"`), []byte(` "mediaType"`), 1) },
			[]string{"the registry sent a manifest whose digest is sha256:", "not " + manifest}},
		"a changed layer": {layer, flip, []string{"layer 1 (" + layer + ")", "does not match its digest or size in the manifest",
			"the registry holds a damaged blob"}},
		"a layer cut short": {layer, func(b []byte) []byte { return b[:len(b)-3] }, []string{"layer 1 (" + layer + ")",
			"the registry sends a blob of another size than the manifest's 16 bytes"}},
		"a longer layer": {layer, func(b []byte) []byte { return append(bytes.Clone(b), "more"...) },
			[]string{"layer 1 (" + layer + ")", "the registry sends a blob of another size than the manifest's 16 bytes"}},
	} {
		t.Run(name, func(t *testing.T) {
			host := lyingRegistry(t, reg, tc.target, tc.lie)
			lying := strings.Replace(uri, reg.Host, host, 1)
			dest := newDest(t)
			err := Fetch(t.Context(), lying, dest, Options{OCI: OCIOptions{InsecureRegistry: host}, Network: quick})
			wantError(t, err, tc.want...)
			if strings.Contains(err.Error(), "mismatch Content-Length") || strings.Contains(err.Error(), "GET \"") {
				t.Errorf("error %q repeats the client library's words", err)
			}
			wantNothing(t, dest)
		})
	}
}
