package main

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/podium-dev/podium/internal/bundle"
	"github.com/podium-dev/podium/internal/testregistry"
)

func TestFetchCommandPullsOCIWithTheDockerConfigFromTheEnvironment(t *testing.T) {
	const user, password = "trainer", "registry-password-in-a-secret"
	reg := testregistry.Start(t, testregistry.Options{Users: map[string]string{user: password}})
	src, digest := writeBundle(t)
	uri, err := bundle.Push(t.Context(), src, "oci://"+reg.Host+"/ml/battle-winner", bundle.PushOptions{
		PlainHTTP:  true,
		Credential: auth.StaticCredential(reg.Host, auth.Credential{Username: user, Password: password}),
	})
	if err != nil {
		t.Fatal(err)
	}
	config := func(password string) string {
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		return fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, basic)
	}
	for name, tc := range map[string]struct {
		env      map[string]string
		insecure bool
		want     string // on stderr; empty for success
	}{
		"PODIUM_DOCKER_CONFIG": {map[string]string{"PODIUM_DOCKER_CONFIG": config(password)}, true, ""},
		"the key of a kubernetes.io/dockerconfigjson Secret": {
			map[string]string{".dockerconfigjson": config(password)}, true, ""},
		"PODIUM_DOCKER_CONFIG first": {
			map[string]string{"PODIUM_DOCKER_CONFIG": config("wrong"), ".dockerconfigjson": config(password)}, true,
			"the registry refused access to the manifest (HTTP 401 Unauthorized"},
		"no --insecure-registry": {map[string]string{"PODIUM_DOCKER_CONFIG": config(password)}, false,
			"pass --insecure-registry " + reg.Host},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dest := filepath.Join(t.TempDir(), "model")
			args := []string{"--uri", uri, "--dest", dest, "--digest", digest, "--attempts", "1"}
			if tc.insecure {
				args = append(args, "--insecure-registry", reg.Host)
			}
			code, stdout, stderr, _ := fetchCommand(t, args...)
			if strings.Contains(stderr, password) {
				t.Errorf("stderr %q shows the password", stderr)
			}
			if tc.want == "" {
				if code != 0 || stdout != "fetched "+uri+" into "+dest+", digest "+digest+" verified\n" {
					t.Fatalf("exit code %d, stdout %q, stderr %q", code, stdout, stderr)
				}
				return
			}
			if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit code %d, stderr %q; want 1 and one line holding %q", code, stderr, tc.want)
			}
		})
	}
}
