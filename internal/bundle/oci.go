package bundle

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Media types of the CNCF ModelPack specification (github.com/modelpack/model-spec), whose
// artifacts `kubectl podium push` writes.
const (
	// ArtifactTypeModelPack is the artifactType of a ModelPack manifest.
	ArtifactTypeModelPack = "application/vnd.cncf.model.manifest.v1+json"
	// MediaTypeModelPackConfig is the media type of a ModelPack manifest's config.
	MediaTypeModelPackConfig = "application/vnd.cncf.model.config.v1+json"
	// MediaTypeModelPackWeightRaw is a layer holding one file, named by its annotation
	// AnnotationModelPackFilepath: the layers `kubectl podium push` writes.
	MediaTypeModelPackWeightRaw = "application/vnd.cncf.model.weight.v1.raw"
	// AnnotationModelPackFilepath is the path in the bundle of a ModelPack layer's file.
	AnnotationModelPackFilepath = "org.cncf.model.filepath"

	modelPackLayerPrefix  = "application/vnd.cncf.model."
	mediaTypeDockerV2     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	maxManifestBytes      = 4 << 20
	dockerHubRegistry     = "registry-1.docker.io"
	// annotationOrasUnpack marks a layer that oras packed from a directory.
	annotationOrasUnpack   = "io.deis.oras.content.unpack"
	whiteoutPrefix         = ".wh."
	whiteoutOpaqueDir      = ".wh..wh..opq"
	insecureRegistryHint   = "; if the registry serves plain HTTP, pass --insecure-registry "
	ociCredentialsHint     = "; check the registry's entry in the docker config (PODIUM_DOCKER_CONFIG) of spec.serving.storageSecretName"
	ociUnsupportedTypeHint = "; push the bundle with `kubectl podium push`, or as an image of tar layers"
)

// modelPackCategories are the kinds of ModelPack layers; all are files of the bundle.
var modelPackCategories = []string{"weight", "weight.config", "doc", "code", "dataset"}

// OCIOptions configure oci:// fetches.
type OCIOptions struct {
	// DockerConfig is a docker config JSON, {"auths": {"REGISTRY": {"auth": "BASE64(USER:PASSWORD)"}}},
	// as in a kubernetes.io/dockerconfigjson Secret; nil means anonymous pulls.
	DockerConfig []byte
	// InsecureRegistry is the one registry (HOST[:PORT], as in the URI) reached over plain HTTP;
	// every other is reached over HTTPS.
	InsecureRegistry string
}

// layerFormat is how a layer's blob holds files.
type layerFormat int

const (
	formatRaw     layerFormat = iota // the blob is the file
	formatTar                        // a tar archive of files
	formatTarGzip                    // the same, gzip-compressed
	formatTarZstd                    // the same, zstd-compressed
)

// maxZstdWindow bounds the memory a zstd layer's decoder may take for its window: a frame can
// ask for up to 2 GiB or more. 128 MiB is what `zstd --long` (27) uses, the largest window
// common tools write without --ultra flags.
const maxZstdWindow = 128 << 20

// fetchOCI pulls the artifact that loc pins and unpacks its layers into the stage, again from
// the start when an attempt fails transiently.
func fetchOCI(ctx context.Context, loc Location, opts Options, s *stage) error {
	if opts.Digest == loc.OCI.Digest {
		return errors.New("spec.artifact.digest is the manifest digest of the URI; it must be the digest of the bundle's files " +
			"(kubectl podium digest DIR), or be left out: the URI's digest already pins the artifact")
	}
	repo, err := newRepository(loc.OCI, opts.OCI.DockerConfig, opts.OCI.InsecureRegistry, opts.Network)
	if err != nil {
		return err
	}
	return withRetries(ctx, opts.Network, func(ctx context.Context) error {
		if err := s.reset(); err != nil {
			return err
		}
		return pullOCI(ctx, repo, loc.OCI, opts, s)
	})
}

// newRepository is a client of the reference's repository with the fetch's timeouts and no
// retries of its own: withRetries makes them, so that --attempts bounds every request.
func newRepository(ref OCIReference, dockerConfig []byte, insecure string, n NetworkOptions) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, err
	}
	creds, err := dockerConfigCredentials(dockerConfig)
	if err != nil {
		return nil, err
	}
	repo.PlainHTTP = insecure != "" && insecure == ref.Registry
	repo.Client = &auth.Client{
		Client:     &http.Client{Transport: n.transport()},
		Cache:      auth.NewCache(),
		Credential: creds,
		Header:     http.Header{"User-Agent": {"podium-fetch"}},
	}
	return repo, nil
}

// pullOCI makes one attempt at the artifact.
func pullOCI(ctx context.Context, repo *remote.Repository, ref OCIReference, opts Options, s *stage) error {
	manifest, err := fetchManifest(ctx, repo, ref, opts)
	if err != nil {
		return err
	}
	formats, image, err := layerFormats(manifest)
	if err != nil {
		return err
	}
	// The manifest declares every blob's size: refuse what cannot fit before downloading it.
	limit := s.maxBytes + int64(s.maxFiles+1)*entryOverhead
	var total int64
	for _, l := range manifest.Layers {
		if total += l.Size; l.Size < 0 || total > limit {
			return &limitError{fmt.Sprintf("the artifact's layers add up to more than %d bytes, the most that --max-size %d "+
				"and --max-files %d allow; check the URI, or raise the limits if the bundle is that large", limit, s.maxBytes, s.maxFiles)}
		}
	}
	for i, l := range manifest.Layers {
		if err := pullLayer(ctx, repo, ref, l, formats[i], image, opts.Network, s); err != nil {
			return fmt.Errorf("layer %d (%s): %w", i+1, l.Digest, err)
		}
	}
	if s.files == 0 {
		return errors.New("the artifact holds no regular files" + ociUnsupportedTypeHint)
	}
	return nil
}

// manifest is what a fetch reads of an OCI image manifest or a Docker v2 manifest.
type manifest struct {
	MediaType    string               `json:"mediaType"`
	ArtifactType string               `json:"artifactType"`
	Config       ocispec.Descriptor   `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
}

// fetchManifest downloads the manifest that ref pins and checks its digest.
func fetchManifest(ctx context.Context, repo *remote.Repository, ref OCIReference, opts Options) (*manifest, error) {
	n := opts.Network
	ctx, watch, stop := watchBody(ctx, n.requestBudget(), n.ResponseTimeout)
	defer stop()
	desc, rc, err := repo.FetchReference(ctx, ref.Digest)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, registryError(err, "the manifest", ref)
	}
	defer func() { _ = rc.Close() }()
	if desc.Size > maxManifestBytes {
		return nil, fmt.Errorf("the manifest is %d bytes, more than the %d a manifest may be", desc.Size, maxManifestBytes)
	}
	raw, err := io.ReadAll(io.LimitReader(watch(rc), maxManifestBytes+1))
	if err != nil {
		return nil, registryError(err, "the manifest", ref)
	}
	if got := digest.FromBytes(raw).String(); got != ref.Digest {
		return nil, fmt.Errorf("the registry sent a manifest whose digest is %s, not %s", got, ref.Digest)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("the manifest is not JSON: %w", err)
	}
	if m.MediaType == "" {
		m.MediaType = desc.MediaType
	}
	switch m.MediaType {
	case ocispec.MediaTypeImageManifest, mediaTypeDockerV2:
		return &m, nil
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		return nil, fmt.Errorf("the URI's digest names an index (media type %s), a list of manifests for several platforms, "+
			"not a bundle; pin the digest of one manifest%s", m.MediaType, ociUnsupportedTypeHint)
	default:
		return nil, fmt.Errorf("the manifest's media type %q is not supported; a bundle is an OCI image manifest (%s)%s",
			m.MediaType, ocispec.MediaTypeImageManifest, ociUnsupportedTypeHint)
	}
}

// layerFormats tells how each layer holds its files: a ModelPack artifact has raw, tar, tar+gzip
// and tar+zstd layers of files; an image has tar, tar+gzip and tar+zstd layers, applied in order over each other
// (image is true). Anything else is refused, naming its media type.
func layerFormats(m *manifest) (_ []layerFormat, image bool, _ error) {
	modelPack := m.ArtifactType == ArtifactTypeModelPack || m.Config.MediaType == MediaTypeModelPackConfig
	if !modelPack {
		switch m.Config.MediaType {
		case ocispec.MediaTypeImageConfig, mediaTypeDockerConfig, ocispec.MediaTypeEmptyJSON:
		default:
			kind := m.Config.MediaType
			if m.ArtifactType != "" {
				kind = m.ArtifactType
			}
			return nil, false, fmt.Errorf("the artifact's type %q is not supported: a bundle is a ModelPack artifact (%s) "+
				"or an image%s", kind, ArtifactTypeModelPack, ociUnsupportedTypeHint)
		}
	}
	formats := make([]layerFormat, len(m.Layers))
	for i, l := range m.Layers {
		f, ok := modelPackFormat(l.MediaType)
		if !modelPack {
			f, ok = imageFormat(l.MediaType)
		}
		if orasFile(m, l) {
			f, ok = formatRaw, true
		}
		if !ok {
			return nil, false, fmt.Errorf("layer %d has the media type %q, which is not supported: a ModelPack artifact's layers "+
				"are %s<weight|weight.config|doc|code|dataset>.v1.<raw|tar|tar+gzip|tar+zstd>, an image's %s, %s or %s%s",
				i+1, l.MediaType, modelPackLayerPrefix, ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip,
				ocispec.MediaTypeImageLayerZstd, ociUnsupportedTypeHint)
		}
		formats[i] = f
	}
	return formats, !modelPack, nil
}

// orasFile says whether layer l is a file pushed with `oras push REPO FILE`: an artifact with the
// empty config whose layer names a file (org.opencontainers.image.title) under oras' default
// media type, the image layer's, without oras' mark of a packed directory. oras pull writes such
// a layer as the file, whatever its media type says; so does the fetcher. A directory pushed with
// oras is a tar+gzip layer marked io.deis.oras.content.unpack, extracted with the directory's
// name as the first element of every path.
func orasFile(m *manifest, l ocispec.Descriptor) bool {
	return m.Config.MediaType == ocispec.MediaTypeEmptyJSON && l.MediaType == ocispec.MediaTypeImageLayer &&
		l.Annotations[ocispec.AnnotationTitle] != "" && l.Annotations[annotationOrasUnpack] == ""
}

func modelPackFormat(mediaType string) (layerFormat, bool) {
	rest, ok := strings.CutPrefix(mediaType, modelPackLayerPrefix)
	if !ok {
		return 0, false
	}
	for _, c := range modelPackCategories {
		switch strings.TrimPrefix(rest, c+".v1.") {
		case "raw":
			return formatRaw, true
		case "tar":
			return formatTar, true
		case "tar+gzip":
			return formatTarGzip, true
		case "tar+zstd":
			return formatTarZstd, true
		}
	}
	return 0, false
}

func imageFormat(mediaType string) (layerFormat, bool) {
	switch mediaType {
	case ocispec.MediaTypeImageLayer:
		return formatTar, true
	case ocispec.MediaTypeImageLayerGzip, mediaTypeDockerLayer:
		return formatTarGzip, true
	case ocispec.MediaTypeImageLayerZstd:
		return formatTarZstd, true
	}
	return 0, false
}

// pullLayer downloads one layer and writes its files into the stage. The blob's size and digest
// are checked as it streams, and at its end, before anything is installed.
func pullLayer(ctx context.Context, repo *remote.Repository, ref OCIReference, l ocispec.Descriptor, f layerFormat, image bool,
	n NetworkOptions, s *stage) error {
	name := ""
	if f == formatRaw {
		name = l.Annotations[AnnotationModelPackFilepath]
		if name == "" {
			name = l.Annotations[ocispec.AnnotationTitle]
		}
		if name == "" {
			return fmt.Errorf("a raw layer names no file: it has neither the %s nor the %s annotation",
				AnnotationModelPackFilepath, ocispec.AnnotationTitle)
		}
	}
	ctx, watch, stop := watchBody(ctx, n.requestBudget(), n.ResponseTimeout)
	defer stop()
	rc, err := repo.Blobs().Fetch(ctx, l)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if strings.HasSuffix(err.Error(), "mismatch Content-Length") { // oras-go's words, with the URL
			return fmt.Errorf("the registry sends a blob of another size than the manifest's %d bytes; "+
				"the registry holds a damaged blob, or something between it and the fetcher changes it", l.Size)
		}
		return registryError(err, "the blob", ref)
	}
	defer func() { _ = rc.Close() }()
	vr := content.NewVerifyReader(watch(rc), l)
	switch f {
	case formatRaw:
		err = s.writeFile(path.Clean(name), vr)
	case formatTar:
		err = extractEntries(vr, s, image)
	case formatTarGzip:
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(vr); err == nil {
			err = extractEntries(unpackLimit(zr, s), s, image)
			_ = zr.Close()
		} else {
			err = archiveReadError(err, "; is it gzip-compressed, as its media type says?")
		}
	case formatTarZstd:
		var zr *zstd.Decoder
		if zr, err = zstd.NewReader(vr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
			zstd.WithDecoderLowmem(true)); err == nil {
			err = extractEntries(unpackLimit(zstdErrors{zr}, s), s, image)
			zr.Close()
		} else {
			err = archiveReadError(err, "; is it zstd-compressed, as its media type says?")
		}
	}
	if err == nil {
		// A tar stream ends before the blob's padding: read the rest, which the digest covers.
		_, err = io.Copy(io.Discard, vr)
	}
	if err == nil {
		err = vr.Verify()
		if errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData) {
			return fmt.Errorf("the blob's content does not match its digest or size in the manifest (%w); "+
				"the registry holds a damaged blob", err)
		}
	}
	return streamError(err)
}

// unpackLimit bounds what a compressed layer unpacks to as the network bounds what is
// downloaded, so that a small layer that expands without end (a compression bomb) fails at
// --max-size instead of filling the volume.
func unpackLimit(r io.Reader, s *stage) io.Reader {
	limit := s.maxBytes + int64(s.maxFiles+1)*entryOverhead
	return &capReader{r: r, limit: limit, err: &limitError{fmt.Sprintf(
		"a layer unpacks to more than %d bytes; check the URI, or raise --max-size if the bundle is that large", limit)}}
}

// zstdErrors says what the zstd decoder's errors mean for a layer.
type zstdErrors struct{ r io.Reader }

func (z zstdErrors) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return n, &limitError{fmt.Sprintf("a zstd layer asks for a window of more than %d MiB to unpack; "+
			"compress it with a smaller window (zstd without --long above 27)", maxZstdWindow>>20)}
	case errors.Is(err, zstd.ErrMagicMismatch):
		return n, fmt.Errorf("%w; is it zstd-compressed, as its media type says?", err)
	}
	return n, err
}

// registryError describes an error of the registry client: what it was fetching, and what to
// check. HTTP 408, 429 and 5xx are transient; 401, 403 and 404 are not.
func registryError(err error, what string, ref OCIReference) error {
	if urlErr, ok := errors.AsType[*url.Error](err); ok { // its message repeats the URL
		err = urlErr.Err
	}
	if resp, ok := errors.AsType[*errcode.ErrorResponse](err); ok {
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		for _, e := range resp.Errors { // their Detail can be long; the code and message say enough
			fmt.Fprintf(&b, ": %s: %s", strings.ToLower(e.Code), e.Message)
		}
		status := b.String()
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return fmt.Errorf("the registry refused access to %s (%s)%s", what, status, ociCredentialsHint)
		case resp.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%s is not in the registry (%s); check the URI", what, status)
		case transientStatus(resp.StatusCode):
			return &transientError{fmt.Errorf("the registry failed (%s)", status)}
		default:
			return fmt.Errorf("the registry answered %s", status)
		}
	}
	switch {
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("%s is not in the registry (HTTP 404 Not Found); check the URI: is the digest one of this repository's?", what)
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return fmt.Errorf("the registry asks for credentials, and there are none for %s%s", ref.Registry, ociCredentialsHint)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("cannot reach the registry (%w)%s%s", err, insecureRegistryHint, ref.Registry)
	case errors.Is(err, errStalled) || strings.Contains(err.Error(), "timeout awaiting response headers"):
		return &transientError{fmt.Errorf("the registry at %s accepted the connection but did not answer in time (%w); "+
			"it may be overloaded, or the address may not be a registry's", ref.Registry, err)}
	case isTransient(err):
		return &transientError{fmt.Errorf("cannot reach the registry (%w); check the URI's host and port, and network policies", err)}
	}
	return fmt.Errorf("cannot fetch %s (%w)", what, err)
}

// dockerConfigCredentials reads a docker config JSON into a credential function of the registry
// client. Only inline credentials count: a credential helper cannot run in the fetcher's container.
func dockerConfigCredentials(raw []byte) (auth.CredentialFunc, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return auth.StaticCredential("", auth.EmptyCredential), nil
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		// The error may quote the JSON, which holds secrets: say where, not what.
		return nil, errors.New("the docker config (PODIUM_DOCKER_CONFIG) is not JSON of the form {\"auths\": {\"REGISTRY\": {\"auth\": \"…\"}}}")
	}
	creds := map[string]auth.Credential{}
	for key, a := range cfg.Auths {
		c := auth.Credential{Username: a.Username, Password: a.Password, RefreshToken: a.IdentityToken, AccessToken: a.RegistryToken}
		if a.Auth != "" {
			plain, err := base64.StdEncoding.DecodeString(a.Auth)
			user, password, ok := strings.Cut(string(plain), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("the auth of %q in the docker config (PODIUM_DOCKER_CONFIG) is not base64 of USER:PASSWORD", key)
			}
			c.Username, c.Password = user, password
		}
		creds[registryHost(key)] = c
	}
	return func(_ context.Context, hostport string) (auth.Credential, error) {
		if c, ok := creds[hostport]; ok {
			return c, nil
		}
		if hostport == dockerHubRegistry {
			for _, alias := range []string{"index.docker.io", "docker.io"} {
				if c, ok := creds[alias]; ok {
					return c, nil
				}
			}
		}
		return auth.EmptyCredential, nil
	}, nil
}

// registryHost is the host[:port] of a docker config's key, which may be a URL such as
// https://index.docker.io/v1/.
func registryHost(key string) string {
	if _, rest, ok := strings.Cut(key, "://"); ok {
		key = rest
	}
	host, _, _ := strings.Cut(key, "/")
	return host
}
