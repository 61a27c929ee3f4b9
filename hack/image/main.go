// Command image builds the manager image without a container engine: an OCI image index with one
// image per platform, each a single layer on an empty base holding the static binary, the nonroot
// user (65532) and the build machine's CA certificates, and no shell. It writes the index to an
// OCI image layout, and pushes it to a registry when asked.
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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
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
	flag.Parse()
	o.platforms = strings.Split(platforms, ",")
	index, err := build(context.Background(), o)
	if err == nil && o.push != "" {
		err = push(context.Background(), o)
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
		bin, err := compile(ctx, o.pkg, goos, goarch)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		desc, err := pushImage(ctx, store, o.binary, bin, certs, ocispec.Platform{OS: goos, Architecture: goarch})
		if err != nil {
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

// compile builds a static binary of pkg for goos/goarch, reproducibly, and returns it.
func compile(ctx context.Context, pkg, goos, goarch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "podium-image-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	out := filepath.Join(dir, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=",
		"-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("building %s for %s/%s: %w", pkg, goos, goarch, err)
	}
	return os.ReadFile(out)
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
	if _, err := oras.Copy(ctx, store, o.tag, repo, tag, oras.DefaultCopyOptions); err != nil {
		return fmt.Errorf("pushing to %s: %w", o.push, err)
	}
	return nil
}
