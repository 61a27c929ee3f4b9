// Command image builds the manager image without a container engine: an OCI image index with one
// image per platform, each a single layer on an empty base holding the static binary, the nonroot
// user (65532) and the build machine's CA certificates, and no shell. Each image has an SPDX SBOM
// attached as an OCI referrer (its subject is the image's manifest), listing the Go modules the
// binary was built from. It writes the index to an OCI image layout, and pushes it, with the
// SBOMs, to a registry when asked.
//
// The same source, Go toolchain and CA bundle give the same digest: the binaries are built with
// -trimpath, without VCS stamps or build IDs, the layer's files all have the time 0 and the owner
// root, the gzip stream has no name or time, and no config or manifest carries a creation time.
//
//	go run ./hack/image -layout bin/image -tag dev
//	go run ./hack/image -layout bin/image -tag dev -push localhost:5000/podium:dev -plain-http
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/podium-dev/podium/hack/gobuild"
)

// nonroot is the user and group the image runs as, as in distroless's nonroot images.
const nonroot = 65532

// options are the command's flags.
type options struct {
	pkg       string   // the main package to build
	binary    string   // its file name in the image, at /
	platforms []string // os/arch pairs
	caFile    string   // the CA certificates to add
	layout    string   // the OCI image layout to write
	tag       string   // the index's tag in the layout
	push      string   // a registry reference to push the index to, if any
	digest    string   // a file to write the index's digest to, if any
	plainHTTP bool     // push over HTTP (a local registry)
}

func main() {
	var o options
	var platforms string
	flag.StringVar(&o.pkg, "package", "./cmd", "the main package to build")
	flag.StringVar(&o.binary, "binary", "manager", "the binary's name in the image, at /, and its entrypoint")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "the platforms to build, comma-separated")
	flag.StringVar(&o.caFile, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt",
		"the CA certificates the image trusts (the build machine's bundle by default)")
	flag.StringVar(&o.layout, "layout", "bin/image", "the OCI image layout directory to write")
	flag.StringVar(&o.tag, "tag", "dev", "the index's tag in the layout")
	flag.StringVar(&o.push, "push", "", "push the index to this reference, such as ghcr.io/podium-dev/podium:v0.1.0")
	flag.BoolVar(&o.plainHTTP, "plain-http", false, "push over plain HTTP, to a local registry")
	flag.StringVar(&o.digest, "digest-file", "", "write the index's digest to this file (make image-sign reads it)")
	flag.Parse()
	o.platforms = strings.Split(platforms, ",")
	index, err := build(context.Background(), o)
	if err == nil && o.push != "" {
		err = push(context.Background(), o)
	}
	if err == nil && o.digest != "" {
		err = os.WriteFile(o.digest, []byte(index.Digest.String()+"\n"), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s (%s) in %s, tag %s\n", index.MediaType, index.Digest, strings.Join(o.platforms, ", "),
		o.layout, o.tag)
	if o.push != "" {
		fmt.Printf("pushed to %s@%s\n", o.push, index.Digest)
	}
}

// build builds the binary for every platform, writes each platform's image and the index that
// names them to the layout, and tags the index.
func build(ctx context.Context, o options) (ocispec.Descriptor, error) {
	certs, err := os.ReadFile(o.caFile)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("reading the CA certificates (set -ca-certificates; on Debian, "+
			"apt-get install ca-certificates): %w", err)
	}
	store, err := oci.New(o.layout)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, p := range o.platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			return ocispec.Descriptor{}, fmt.Errorf("platform %q: want os/arch, such as linux/arm64", p)
		}
		bin, err := gobuild.Static(ctx, o.pkg, goos, goarch)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc, err := pushImage(ctx, store, o.binary, bin, certs, ocispec.Platform{OS: goos, Architecture: goarch})
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		if err := attachSBOM(ctx, store, desc, o.binary, bin); err != nil {
			return ocispec.Descriptor{}, err
		}
		index.Manifests = append(index.Manifests, desc)
	}
	desc, err := pushJSON(ctx, store, ocispec.MediaTypeImageIndex, index)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, store.Tag(ctx, desc, o.tag)
}

// pushImage writes one platform's layer, config and manifest to the store.
func pushImage(ctx context.Context, store *oci.Store, name string, bin, certs []byte,
	platform ocispec.Platform) (ocispec.Descriptor, error) {
	tarball, err := layer(name, bin, certs)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression) // no name, no time: the same bytes every time
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := zw.Write(tarball); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, err
	}
	layerDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz.Bytes()),
		Size: int64(gz.Len())}
	if err := pushBlob(ctx, store, layerDesc, gz.Bytes()); err != nil {
		return ocispec.Descriptor{}, err
	}
	config := ocispec.Image{
		Platform: platform,
		Config: ocispec.ImageConfig{
			User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
			Entrypoint: []string{"/" + name},
			WorkingDir: "/",
			Env:        []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tarball)}},
	}
	configDesc, err := pushJSON(ctx, store, ocispec.MediaTypeImageConfig, config)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	}
	desc, err := pushJSON(ctx, store, ocispec.MediaTypeImageManifest, manifest)
	desc.Platform = &platform
	return desc, err
}

// layer is the image's one layer, uncompressed: /etc/passwd and /etc/group with root and
// nonroot, the CA certificates, a world-writable /tmp, and the binary at /name.
func layer(name string, bin, certs []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dir := func(path string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path, Mode: mode, ModTime: epoch,
			Format: tar.FormatPAX})
	}
	file := func(path string, mode int64, data []byte) error {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data)), ModTime: epoch,
			Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n",
		nonroot, nonroot)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonroot)
	err := errors.Join(
		dir("etc/", 0o755),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		dir("etc/ssl/", 0o755),
		dir("etc/ssl/certs/", 0o755),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, certs),
		dir("tmp/", 0o1777),
		file(name, 0o755, bin),
		tw.Close(),
	)
	return buf.Bytes(), err
}

// pushJSON writes v to the store as a blob of mediaType.
func pushJSON(ctx context.Context, store *oci.Store, mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	return desc, pushBlob(ctx, store, desc, data)
}

// pushBlob writes data to the store unless it holds it already (an earlier build of the same
// source).
func pushBlob(ctx context.Context, store *oci.Store, desc ocispec.Descriptor, data []byte) error {
	exists, err := store.Exists(ctx, desc)
	if err != nil || exists {
		return err
	}
	return store.Push(ctx, desc, bytes.NewReader(data))
}

// push copies the tagged index and everything it names from the layout to the registry, with the
// credentials of docker login, oras login or helm registry login (~/.docker/config.json) when the
// registry asks for them.
func push(ctx context.Context, o options) error {
	store, err := oci.New(o.layout)
	if err != nil {
		return err
	}
	repo, err := remote.NewRepository(o.push)
	if err != nil {
		return fmt.Errorf("the reference to push to, %q: %w", o.push, err)
	}
	repo.PlainHTTP = o.plainHTTP
	creds, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return fmt.Errorf("reading the registry credentials: %w", err)
	}
	repo.Client = &auth.Client{Credential: credentials.Credential(creds), Cache: auth.NewCache(),
		Header: map[string][]string{"User-Agent": {"podium-image"}}}
	tag := repo.Reference.Reference
	if tag == "" {
		return fmt.Errorf("the reference to push to, %q, has no tag: add one, such as :v0.1.0", o.push)
	}
	index, err := oras.Copy(ctx, store, o.tag, repo, tag, oras.DefaultCopyOptions)
	if err != nil {
		return fmt.Errorf("pushing to %s: %w", o.push, err)
	}
	// The SBOMs refer to the images, which do not name them: each is pushed on its own, after its
	// subject, so that the registry lists it among the image's referrers.
	images, err := content.Successors(ctx, store, index)
	if err != nil {
		return err
	}
	for _, image := range images {
		sboms, err := registry.Referrers(ctx, store, image, MediaTypeSPDX)
		if err != nil {
			return err
		}
		for _, s := range sboms {
			if err := oras.CopyGraph(ctx, store, repo, s, oras.DefaultCopyGraphOptions); err != nil {
				return fmt.Errorf("pushing the SBOM of %s to %s: %w", image.Digest, o.push, err)
			}
		}
	}
	return nil
}

// MediaTypeSPDX is the media type of the SBOMs, and the artifact type of their manifests.
const MediaTypeSPDX = "application/spdx+json"

// epoch is the SBOM's creation time: the build records no time, so that it is reproducible.
const epoch = "1970-01-01T00:00:00Z"

// attachSBOM writes the SPDX 2.3 SBOM of the binary bin and a manifest whose subject is the
// image, so that registries list it among the image's referrers (oras discover, cosign tree).
func attachSBOM(ctx context.Context, store *oci.Store, image ocispec.Descriptor, name string, bin []byte) error {
	doc, err := sbom(image, name, bin)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	blob := ocispec.Descriptor{MediaType: MediaTypeSPDX, Digest: digest.FromBytes(data), Size: int64(len(data)),
		Annotations: map[string]string{ocispec.AnnotationTitle: name + ".spdx.json"}}
	if err := pushBlob(ctx, store, blob, data); err != nil {
		return err
	}
	subject := ocispec.Descriptor{MediaType: image.MediaType, Digest: image.Digest, Size: image.Size}
	_, err = oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, MediaTypeSPDX, oras.PackManifestOptions{
		Subject: &subject, Layers: []ocispec.Descriptor{blob},
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: epoch},
	})
	return err
}

// spdxDocument is the part of an SPDX 2.3 document the SBOM fills in.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string            `json:"name"`
	SPDXID           string            `json:"SPDXID"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// sbom reads the Go build information of bin (its module, the modules it was built from and the
// Go toolchain) into an SPDX document about the image.
func sbom(image ocispec.Descriptor, name string, bin []byte) (spdxDocument, error) {
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		return spdxDocument{}, fmt.Errorf("reading the build information of %s: %w", name, err)
	}
	platform := ""
	if p := image.Platform; p != nil {
		platform = " " + p.OS + "/" + p.Architecture
	}
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              name + platform,
		DocumentNamespace: "https://spdx.podium.dev/image/" + image.Digest.Encoded(),
		CreationInfo:      spdxCreationInfo{Created: epoch, Creators: []string{"Tool: podium hack/image"}},
	}
	add := func(path, version, sum string) string {
		id := fmt.Sprintf("SPDXRef-Package-%d", len(doc.Packages))
		p := spdxPackage{Name: path, SPDXID: id, VersionInfo: version, DownloadLocation: "NOASSERTION"}
		if version != "" && version != "(devel)" {
			p.ExternalRefs = []spdxExternalRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
				ReferenceLocator: "pkg:golang/" + path + "@" + version}}
		}
		if sum != "" {
			p.Checksums = []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: sum}}
		}
		doc.Packages = append(doc.Packages, p)
		return id
	}
	root := add(info.Main.Path, info.Main.Version, "")
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", root})
	doc.Relationships = append(doc.Relationships, spdxRelationship{root, "DEPENDS_ON",
		add("golang.org/toolchain", strings.TrimPrefix(info.GoVersion, "go"), "")})
	for _, m := range info.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		dep := add(m.Path, m.Version, hashOf(m.Sum))
		doc.Relationships = append(doc.Relationships, spdxRelationship{root, "DEPENDS_ON", dep})
	}
	return doc, nil
}

// hashOf is the hex SHA-256 of a go.sum hash ("h1:" and base64), empty when it is not one.
func hashOf(sum string) string {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sum, "h1:"))
	if err != nil || !strings.HasPrefix(sum, "h1:") {
		return ""
	}
	return hex.EncodeToString(b)
}
