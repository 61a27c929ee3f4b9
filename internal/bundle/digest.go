// Package bundle holds what Podium knows about model bundles: the directory of files (model,
// scalers, metadata) a ModelVersion's artifact.uri points at, and its digest.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DigestPrefix starts every bundle digest.
const DigestPrefix = "sha256:"

// Digest computes the digest of the bundle in dir. The digest covers every regular file below dir
// and nothing else: it is "sha256:" followed by the SHA-256 of the listing made of one line per
// file, sorted by path,
//
//	<hex SHA-256 of the file's bytes><two spaces><path relative to dir, with '/' separators>\n
//
// which is what `sha256sum` prints. So the same digest comes from the shell:
//
//	cd DIR && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum
//
// Empty directories do not count; a symbolic link or any other non-regular file is an error,
// because it could make two machines read different bytes.
func Digest(dir string) (string, error) {
	files, err := regularFiles(dir)
	if err != nil {
		return "", err
	}
	listing := sha256.New()
	for _, rel := range files {
		sum, err := fileSum(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return "", err
		}
		_, _ = fmt.Fprintf(listing, "%s  %s\n", sum, rel) // a hash never fails to write
	}
	return DigestPrefix + hex.EncodeToString(listing.Sum(nil)), nil
}

// regularFiles lists the regular files below dir as sorted slash-separated relative paths.
func regularFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("bundle %s: %s is not a regular file; a bundle holds only regular files", dir, rel)
		}
		if strings.Contains(rel, "\n") {
			return fmt.Errorf("bundle %s: the file name %q holds a newline", dir, rel)
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	return files, nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
