package bundle

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// largeBundle has a file that SeaweedFS stores in several chunks (its filer splits at 4 MiB).
var largeBundle = func() map[string]string {
	files := maps.Clone(seedBundle)
	files["weights/layer.bin"] = strings.Repeat("0123456789abcdef", 5<<16) // 5 MiB
	return files
}()

// useCredentials gives the AWS SDK these credentials for the rest of the test.
func useCredentials(t *testing.T, accessKey, secretKey string) {
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
}

func (s *seaweedFS) options(digest string) Options {
	return Options{Digest: digest, S3: S3Options{Endpoint: s.endpoint, ForcePathStyle: true}}
}

func TestFetchS3Bundle(t *testing.T) {
	s := needSeaweedFS(t)
	useCredentials(t, testAccessKey, testSecretKey)
	root := s.prefix(t)
	s.upload(t, root+"battle-winner/4/", largeBundle)
	// Neighbours that share the prefix's first characters are not part of the bundle.
	s.upload(t, root+"battle-winner/40/", map[string]string{"model.pkl": "version 40"})
	s.upload(t, root+"battle-winner/4.json", map[string]string{"": "{}"})

	for _, uri := range []string{"s3://" + testBucket + "/" + root + "battle-winner/4/", "s3://" + testBucket + "/" + root + "battle-winner/4"} {
		t.Run(uri, func(t *testing.T) {
			dest := newDest(t)
			if err := Fetch(t.Context(), uri, dest, s.options(digestOf(t, largeBundle))); err != nil {
				t.Fatal(err)
			}
			wantBundle(t, dest, largeBundle)
		})
	}
}

func TestFetchS3DigestMismatch(t *testing.T) {
	s := needSeaweedFS(t)
	useCredentials(t, testAccessKey, testSecretKey)
	s.upload(t, s.prefix(t)+"battle-winner/4/", seedBundle)
	uri, dest := "s3://"+testBucket+"/"+s.prefix(t)+"battle-winner/4/", newDest(t)
	other := digestOf(t, map[string]string{"model.pkl": "another model"})

	err := Fetch(t.Context(), uri, dest, s.options(other))
	wantError(t, err, "bundle "+uri+": digest "+digestOf(t, seedBundle)+" does not match spec.artifact.digest "+other)
	wantNothing(t, dest)
}

func TestFetchS3MissingBundle(t *testing.T) {
	s := needSeaweedFS(t)
	useCredentials(t, testAccessKey, testSecretKey)
	root := s.prefix(t)
	s.upload(t, root+"battle-winner/4/", seedBundle)
	for name, tc := range map[string]struct {
		uri  string
		want string
	}{
		"an empty prefix": {"s3://" + testBucket + "/" + root + "battle-winner/5/",
			`no objects under the prefix "` + root + `battle-winner/5/" of bucket "` + testBucket + `"`},
		"a missing bucket": {"s3://no-such-bucket/battle-winner/4/", "not found (NoSuchBucket"},
	} {
		t.Run(name, func(t *testing.T) {
			dest := newDest(t)
			wantError(t, Fetch(t.Context(), tc.uri, dest, s.options("")), "bundle "+tc.uri+": "+tc.want)
			wantNothing(t, dest)
		})
	}
}

func TestFetchS3WrongCredentials(t *testing.T) {
	s := needSeaweedFS(t)
	useCredentials(t, testAccessKey, testSecretKey)
	s.upload(t, s.prefix(t)+"battle-winner/4/", seedBundle)
	uri := "s3://" + testBucket + "/" + s.prefix(t) + "battle-winner/4/"
	for name, creds := range map[string][2]string{
		"an unknown access key": {"no-such-key", testSecretKey},
		"a wrong secret":        {testAccessKey, "wrong-secret"},
	} {
		t.Run(name, func(t *testing.T) {
			useCredentials(t, creds[0], creds[1])
			dest := newDest(t)
			wantError(t, Fetch(t.Context(), uri, dest, s.options("")),
				"bundle "+uri+": access denied (", "); check the credentials in spec.serving.storageSecretName")
			wantNothing(t, dest)
		})
	}
}

func TestFetchS3UnreachableEndpoint(t *testing.T) {
	useCredentials(t, testAccessKey, testSecretKey)
	uri, dest := "s3://models/battle-winner/4/", newDest(t)
	opts := Options{S3: S3Options{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", closedPort(t)), ForcePathStyle: true}, Network: quick}
	wantError(t, Fetch(t.Context(), uri, dest, opts),
		"bundle "+uri+": cannot reach the store (", "connection refused", "check the network and the endpoint")
	wantNothing(t, dest)
}

func TestFetchS3RefusesAnEndpointWithoutScheme(t *testing.T) {
	uri, dest := "s3://models/battle-winner/4/", newDest(t)
	opts := Options{S3: S3Options{Endpoint: "minio.storage:9000"}}
	wantError(t, Fetch(t.Context(), uri, dest, opts), "bundle "+uri+": ", `"minio.storage:9000" is not an http:// or https:// URL`)
	wantNothing(t, dest)
}

// gs:// and azblob:// stores cannot be reached from here. Their clients are pointed at loopback
// servers that refuse every request as the real services refuse bad credentials, which shows that
// the URIs reach the right drivers and that their failures name the URI and what to check.
func TestFetchGSAndAzblobFailuresNameTheURI(t *testing.T) {
	gcs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":{"code":403,"message":"podium@example.iam.gserviceaccount.com does not have storage.objects.list access"}}`)
	}))
	t.Cleanup(gcs.Close)
	azure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-error-code", "AuthenticationFailed")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message></Error>`)
	}))
	t.Cleanup(azure.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(gcs.URL, "http://"))
	t.Setenv("AZURE_STORAGE_ACCOUNT", "podium")
	t.Setenv("AZURE_STORAGE_KEY", "cG9kaXVtLXRlc3Qta2V5") // base64 of "podium-test-key"
	t.Setenv("AZURE_STORAGE_DOMAIN", strings.TrimPrefix(azure.URL, "http://"))
	t.Setenv("AZURE_STORAGE_PROTOCOL", "http")

	for uri, cause := range map[string]string{
		"gs://ml-artifacts/battle-winner/4/": "HTTP 403: podium@example.iam.gserviceaccount.com does not have storage.objects.list access",
		"azblob://models/battle-winner/4/":   "HTTP 403 AuthenticationFailed",
	} {
		t.Run(uri, func(t *testing.T) {
			dest := newDest(t)
			wantError(t, Fetch(t.Context(), uri, dest, Options{}),
				"bundle "+uri+": access denied ("+cause+"); check the credentials in spec.serving.storageSecretName")
			wantNothing(t, dest)
		})
	}
}

// useGCSAndAzure points the gs:// and azblob:// clients at the given loopback servers.
func useGCSAndAzure(t *testing.T, gcsHost, azureHost string) {
	t.Setenv("STORAGE_EMULATOR_HOST", gcsHost)
	t.Setenv("AZURE_STORAGE_ACCOUNT", "podium")
	t.Setenv("AZURE_STORAGE_KEY", "cG9kaXVtLXRlc3Qta2V5") // base64 of "podium-test-key"
	t.Setenv("AZURE_STORAGE_DOMAIN", azureHost)
	t.Setenv("AZURE_STORAGE_PROTOCOL", "http")
}

// The clients of every store stop after a bounded number of attempts, and a store that does not
// answer fails within seconds: left to itself, the GCS client retries until its context ends.
func TestFetchFromStoresThatFailEndsWithinSeconds(t *testing.T) {
	troubled, requests := statusServer(t, http.StatusServiceUnavailable)
	stalled := stallingServer(t, false)
	closed := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	useCredentials(t, testAccessKey, testSecretKey)
	for _, server := range []struct {
		name, host string
		counted    bool
		want       []string
	}{
		{"a store that answers 503", strings.TrimPrefix(troubled.URL, "http://"), true, []string{"the store failed (HTTP 503"}},
		{"a store that does not answer", strings.TrimPrefix(stalled.URL, "http://"), false, []string{"timeout awaiting response headers"}},
		{"no store", closed, false, []string{"connection refused"}},
	} {
		for _, uri := range []string{"s3://models/battle-winner/4/", "gs://models/battle-winner/4/", "azblob://models/battle-winner/4/"} {
			t.Run(server.name+"/"+uri, func(t *testing.T) {
				useGCSAndAzure(t, server.host, server.host)
				opts := Options{Network: quick, S3: S3Options{Endpoint: "http://" + server.host, ForcePathStyle: true}}
				// Without the bounds, this deadline ends the test rather than the fetch.
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				before := requests.Load()
				dest := newDest(t)
				start := time.Now()
				err := Fetch(ctx, uri, dest, opts)
				if took := time.Since(start); took > 15*time.Second {
					t.Errorf("the fetch failed after %s, want within seconds", took)
				}
				wantError(t, err, append([]string{"bundle " + uri + ": "}, server.want...)...)
				if n := requests.Load() - before; server.counted && n != int32(quick.Attempts) {
					t.Errorf("the store got %d requests, want %d attempts", n, quick.Attempts)
				}
				wantNothing(t, dest)
			})
		}
	}
}
