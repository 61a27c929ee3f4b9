package bundle

import (
	"archive/tar"
	"bytes"

	"testing"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/podium-dev/podium/internal/testregistry"
)

// tarZstd builds a zstd-compressed tar of files, with the encoder's options.
func tarZstd(t *testing.T, files map[string][]byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, name := range keysOf(files) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func keysOf(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	return names
}

func asBytes(files map[string]string) map[string][]byte {
	out := map[string][]byte{}
	for name, content := range files {
		out[name] = []byte(content)
	}
	return out
}

// TestFetchOCIZstdLayers pushes ModelPack and image layers compressed with zstd to a real
// registry and fetches them.
func TestFetchOCIZstdLayers(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	for name, tc := range map[string]struct{ config, layer string }{
		"a ModelPack weight layer, tar+zstd": {MediaTypeModelPackConfig, "application/vnd.cncf.model.weight.v1.tar+zstd"},
		"a ModelPack code layer, tar+zstd":   {MediaTypeModelPackConfig, "application/vnd.cncf.model.code.v1.tar+zstd"},
		"an image layer, tar+zstd":           {ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerZstd},
	} {
		t.Run(name, func(t *testing.T) {
			uri := pushImage(t, reg, "ml/zstd", tc.config, tc.layer, tarZstd(t, asBytes(battleWinner)))
			opts := ociOptions(reg)
			opts.Digest = digestOf(t, battleWinner)
			dest := newDest(t)
			if err := Fetch(t.Context(), uri, dest, opts); err != nil {
				t.Fatal(err)
			}
			wantBundle(t, dest, battleWinner)
		})
	}
}

// TestFetchOCIZstdBombs: a small zstd layer that unpacks to far more than the limits fails at
// them, with a message that says which limit, and leaves nothing.
func TestFetchOCIZstdBombs(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	zeros := make([]byte, 64<<20)
	bomb := tarZstd(t, map[string][]byte{"model.pkl": zeros}, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed; want a small layer", len(bomb))
	}
	// Directory entries count no bytes, only entries: a few with large headers pass the limit
	// of --max-files, and only the cap on the unpacked stream stops them.
	var dirs bytes.Buffer
	zw, err := zstd.NewWriter(&dirs)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, name := range []string{"a/", "b/", "c/"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755,
			PAXRecords: map[string]string{"comment": string(bytes.Repeat([]byte("x"), 900<<10))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		layer []byte
		want  string
	}{
		"one file of zeros beyond --max-size":    {bomb, "more than 1048576 bytes"},
		"directory entries with endless headers": {dirs.Bytes(), "a layer unpacks to more than"},
		"a frame that asks for a 256 MiB window": {wideWindow(t), "asks for a window of more than 128 MiB"},
		"a layer that is not zstd":               {[]byte("zstd"), "magic number mismatch; is it zstd-compressed"},
	} {
		t.Run(name, func(t *testing.T) {
			uri := pushImage(t, reg, "ml/bomb", MediaTypeModelPackConfig, "application/vnd.cncf.model.weight.v1.tar+zstd", tc.layer)
			opts := ociOptions(reg)
			opts.MaxBytes, opts.MaxFiles = 1<<20, 10
			dest := newDest(t)
			err := Fetch(t.Context(), uri, dest, opts)
			wantError(t, err, "bundle "+uri+": ", tc.want)
			wantNothing(t, dest)
		})
	}
}

// wideWindow is a zstd frame whose header asks for a 256 MiB window (the encoder shrinks the
// window to the content, so it is written by hand) around one raw block, a tar of one file.
func wideWindow(t *testing.T) []byte {
	t.Helper()
	var content bytes.Buffer
	tw := tar.NewWriter(&content)
	if err := tw.WriteHeader(&tar.Header{Name: "model.pkl", Typeflag: tar.TypeReg, Mode: 0o644, Size: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("weights")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, // magic number
		0x00,    // frame header descriptor: no single segment, no content size, checksum or dictionary
		18 << 3, // window descriptor: exponent 18, window log 10+18 = 28: 256 MiB
	}
	// Block header: the last block, raw, its size in the upper 21 bits (little-endian).
	h := uint32(content.Len())<<3 | 1
	frame = append(frame, byte(h), byte(h>>8), byte(h>>16))
	return append(frame, content.Bytes()...)
}
