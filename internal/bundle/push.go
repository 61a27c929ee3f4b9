package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/podium-dev/podium/internal/bundleuri"
)

// PushOptions configure Push and ResolveOCI.
type PushOptions struct {
	// Credential gives the registry's credentials; nil means anonymous.
	Credential auth.CredentialFunc
	// PlainHTTP reaches the registry over plain HTTP instead of HTTPS.
	PlainHTTP bool
	// Network bounds the connections' waits; Attempts and Backoff are not used.
	Network NetworkOptions
	// Created, when set, is recorded as the bundle's creation time (the config's createdAt and
	// the manifest's org.opencontainers.image.created). Without it nothing records a time, so
	// the same files give the same manifest digest.
	Created time.Time
}

// ociTargetPattern is a push target: a repository with an optional tag and no digest.
var ociTargetPattern = regexp.MustCompile(`^oci://(?P<registry>` + bundleuri.OCIHost + `)/(?P<repository>` + bundleuri.OCIRepository + `)` +
	`(:(?P<tag>` + bundleuri.OCITag + `))?$`)

// ParseOCITarget parses oci://REGISTRY/REPOSITORY[:TAG], where a bundle is pushed or a tag resolved.
func ParseOCITarget(target string) (OCIReference, error) {
	m := ociTargetPattern.FindStringSubmatch(target)
	if m == nil {
		return OCIReference{}, fmt.Errorf("%s: write the target as oci://REGISTRY[:PORT]/REPOSITORY[:TAG], "+
			"the repository in lowercase letters, digits and the separators . _ __ - /", target)
	}
	group := func(name string) string { return m[ociTargetPattern.SubexpIndex(name)] }
	return OCIReference{Registry: group("registry"), Repository: group("repository"), Tag: group("tag")}, nil
}

// Push uploads the bundle in dir to the repository that target (oci://REGISTRY/REPOSITORY[:TAG])
// names, as a ModelPack artifact with one raw layer per file, tags it if target has a tag, and
// returns the reference pinned by the manifest's digest, oci://REGISTRY/REPOSITORY@sha256:…,
// for spec.artifact.uri. Blobs the repository already holds are not uploaded again.
func Push(ctx context.Context, dir, target string, opts PushOptions) (string, error) {
	ref, err := ParseOCITarget(target)
	if err != nil {
		return "", err
	}
	files, err := regularFiles(dir) // the same files as the bundle's digest
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("bundle %s: holds no regular files", dir)
	}
	repo, err := pushRepository(ref, opts)
	if err != nil {
		return "", err
	}
	layers := make([]ocispec.Descriptor, 0, len(files))
	diffIDs := make([]digest.Digest, 0, len(files))
	for _, rel := range files {
		desc, err := pushFile(ctx, repo, filepath.Join(dir, filepath.FromSlash(rel)), rel)
		if err != nil {
			return "", pushError(err, rel, target, ref)
		}
		layers = append(layers, desc)
		diffIDs = append(diffIDs, desc.Digest)
	}
	// The ModelPack config: the layers' digests, and the creation time only when asked for, so
	// that the digest is a function of the files.
	descriptor := map[string]any{"name": ref.Repository}
	manifest := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactTypeModelPack, Layers: layers}
	if !opts.Created.IsZero() {
		created := opts.Created.UTC()
		descriptor["createdAt"] = created
		manifest.Annotations = map[string]string{ocispec.AnnotationCreated: created.Format(time.RFC3339)}
	}
	config, err := json.Marshal(map[string]any{
		"descriptor": descriptor,
		"modelfs":    map[string]any{"type": "layers", "diffIds": diffIDs},
		"config":     map[string]any{},
	})
	if err != nil {
		return "", err
	}
	manifest.Config = blobDescriptor(MediaTypeModelPackConfig, config)
	if err := pushBlob(ctx, repo, manifest.Config, config); err != nil {
		return "", pushError(err, "the config", target, ref)
	}
	raw, err := json.Marshal(manifest)
	if err != nil {
		return "", err
	}
	desc := blobDescriptor(ocispec.MediaTypeImageManifest, raw)
	desc.ArtifactType = ArtifactTypeModelPack
	if ref.Tag != "" {
		err = repo.PushReference(ctx, desc, bytes.NewReader(raw), ref.Tag)
	} else {
		err = repo.Push(ctx, desc, bytes.NewReader(raw))
	}
	if err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return "", pushError(err, "the manifest", target, ref)
	}
	return "oci://" + ref.Registry + "/" + ref.Repository + "@" + desc.Digest.String(), nil
}

// pushError says what could not be pushed where, and what to do: log in when the registry asks
// for credentials or refuses them (the plugin reads those of docker login and oras login), or
// check the address when it cannot be reached or does not answer.
func pushError(err error, what, target string, ref OCIReference) error {
	login := fmt.Sprintf("log in with `docker login %s` or `oras login %s`", ref.Registry, ref.Registry)
	const store = " (kubectl podium push uses the credentials of ~/.docker/config.json)"
	if urlErr, ok := errors.AsType[*url.Error](err); ok { // its message repeats the URL
		err = urlErr.Err
	}
	switch resp, ok := errors.AsType[*errcode.ErrorResponse](err); {
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return fmt.Errorf("pushing %s to %s: the registry asks for credentials, and there are none for %s; %s%s",
			what, target, ref.Registry, login, store)
	case ok && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return fmt.Errorf("pushing %s to %s: the registry refused the credentials for %s (HTTP %d %s); %s as a user "+
			"who may push to %s%s", what, target, ref.Registry, resp.StatusCode, http.StatusText(resp.StatusCode), login,
			ref.Repository, store)
	case !ok && isTransient(err):
		return fmt.Errorf("pushing %s to %s: %w", what, target, registryError(err, what, ref))
	}
	return fmt.Errorf("pushing %s to %s: %w", what, target, err)
}

// ResolveOCI returns the manifest digest that the tag of target (oci://REGISTRY/REPOSITORY:TAG)
// points at now, or that of target's own digest reference.
func ResolveOCI(ctx context.Context, target string, opts PushOptions) (string, error) {
	ref, err := ParseOCITarget(target)
	reference := ref.Tag
	if err != nil {
		if ref, err = bundleuri.ParseOCI(target); err != nil {
			return "", err
		}
		reference = ref.Digest
	}
	if reference == "" {
		return "", fmt.Errorf("%s: name a tag to resolve, as oci://REGISTRY/REPOSITORY:TAG", target)
	}
	repo, err := pushRepository(ref, opts)
	if err != nil {
		return "", err
	}
	desc, err := repo.Resolve(ctx, reference)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", target, err)
	}
	return desc.Digest.String(), nil
}

func pushRepository(ref OCIReference, opts PushOptions) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, err
	}
	creds := opts.Credential
	if creds == nil {
		creds = auth.StaticCredential("", auth.EmptyCredential)
	}
	repo.PlainHTTP = opts.PlainHTTP
	repo.Client = &auth.Client{
		Client:     &http.Client{Transport: opts.Network.withDefaults().transport()},
		Cache:      auth.NewCache(),
		Credential: creds,
		Header:     http.Header{"User-Agent": {"kubectl-podium"}},
	}
	return repo, nil
}

// pushFile uploads one file as a raw ModelPack layer named by its path in the bundle. It reads
// the file twice: once for its digest, which the upload needs first, and once to upload it.
func pushFile(ctx context.Context, repo *remote.Repository, path, rel string) (ocispec.Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer func() { _ = f.Close() }()
	dgst, err := digest.SHA256.FromReader(f)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{
		MediaType: MediaTypeModelPackWeightRaw,
		Digest:    dgst,
		Size:      size,
		Annotations: map[string]string{
			AnnotationModelPackFilepath: rel,
			ocispec.AnnotationTitle:     rel,
		},
	}
	exists, err := repo.Exists(ctx, desc)
	if err != nil || exists {
		return desc, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ocispec.Descriptor{}, err
	}
	// The registry checks the upload against the digest, so a file changed meanwhile fails.
	return desc, repo.Push(ctx, desc, io.LimitReader(f, size))
}

func pushBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, data []byte) error {
	exists, err := repo.Exists(ctx, desc)
	if err != nil || exists {
		return err
	}
	err = repo.Push(ctx, desc, bytes.NewReader(data))
	if errors.Is(err, errdef.ErrAlreadyExists) {
		return nil
	}
	return err
}

// blobDescriptor describes a blob held in memory.
func blobDescriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}
