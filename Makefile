# Image URL to use all building/pushing image targets
IMG ?= controller:latest
# YEAR defines the year value used for substituting the YEAR placeholder in the boilerplate header.
YEAR ?= $(shell date +%Y)

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
# Be aware that the target commands are only tested with Docker which is
# scaffolded by default. However, you might want to replace it to use other
# tools. (i.e. podman)
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'. The awk command is responsible for reading the
# entire set of makefiles included in this invocation, looking for lines of the
# file as xyz: ## something, and then pretty-format the target and help. Then,
# if there's a line with ##@ something, that gets pretty-printed as a category.
# More info on the usage of ANSI control characters for terminal formatting:
# https://en.wikipedia.org/wiki/ANSI_escape_code#SGR_parameters
# More info on the awk command:
# http://linuxcommand.org/lc3_adv_awk.php

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen docs ## Generate the CRDs, the ClusterRole, the chart's copies of them (hack/sync-chart.sh) and docs/api.md.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd:generateEmbeddedObjectMeta=true webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	hack/sync-chart.sh

.PHONY: docs
docs: crd-ref-docs ## Generate the API reference docs/api.md from the Go types.
	"$(CRD_REF_DOCS)" --source-path=api --config=hack/crd-ref-docs/config.yaml --renderer=markdown --output-path=docs/api.md --log-level=ERROR

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt",year=$(YEAR) paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet test-unit test-e2e ## Run every test tier: unit, envtest integration and e2e on a kwok cluster.

.PHONY: test-unit
test-unit: kube-binaries seaweedfs registry cosign krew actionlint prometheus chromium helm kustomize ## Run the unit and envtest integration tests, and the chart's (helm lint, helm template).
	KUBEBUILDER_ASSETS="$(KUBE_BIN_DIR)" PODIUM_BIN_DIR="$(LOCALBIN)" go test -race $$(go list ./... | grep -v /test/e2e) -coverprofile cover.out

.PHONY: test-e2e
test-e2e: kube-binaries registry prometheus chromium build helm ## Run the e2e tests on a local kwok cluster (started and removed by the tests).
	PODIUM_KUBE_BIN_DIR="$(KUBE_BIN_DIR)" PODIUM_BIN_DIR="$(LOCALBIN)" go test -tags e2e -count=1 -timeout 20m ./test/e2e/ -v -ginkgo.v

SEEDS ?= 100000
.PHONY: explore
explore: ## Run the adversarial explorer on SEEDS random schedules (lagging caches, API errors, crashes, two managers).
	go test ./test/explore -run TestExplore -count=1 -timeout 0 -v -args -seeds=$(SEEDS)

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated code or manifests are not committed.
	@git diff --exit-code -- api config charts docs/api.md && [ -z "$$(git status --porcelain -- api config charts docs/api.md)" ] || \
		{ git status --short -- api config charts docs/api.md; echo "Generated files are stale: run 'make manifests generate' and commit the result."; exit 1; }

.PHONY: lint
lint: golangci-lint vet ## Run golangci-lint and go vet.
	"$(GOLANGCI_LINT)" run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint linter and perform fixes
	"$(GOLANGCI_LINT)" run --fix

.PHONY: lint-config
lint-config: golangci-lint ## Verify golangci-lint linter configuration
	"$(GOLANGCI_LINT)" config verify

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager and the kubectl-podium plugin binaries.
	go build -o bin/manager ./cmd
	go build -o bin/kubectl-podium ./cmd/kubectl-podium

.PHONY: run
run: manifests generate fmt vet ## Run a controller from your host.
	go run ./cmd --leader-elect=false # one manager on your host, no Lease to wait for

# The manager image without a container engine (hack/image): an OCI image index for IMAGE_PLATFORMS,
# written to bin/image as an OCI image layout; the same source gives the same digest.
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/podium/Chart.yaml)
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64

.PHONY: image
image: ## Build the manager image (linux/amd64 and linux/arm64, nonroot, no shell) without Docker, into bin/image.
	go run ./hack/image -layout $(LOCALBIN)/image -tag $(IMAGE_TAG) -platforms $(IMAGE_PLATFORMS)

.PHONY: image-push
image-push: ## Build the manager image and push it to REGISTRY (such as ghcr.io/podium-dev/podium) as IMAGE_TAG; PLAIN_HTTP=1 for a local registry.
	@test -n "$(REGISTRY)" || { echo "Set REGISTRY, such as: make image-push REGISTRY=ghcr.io/podium-dev/podium" >&2; exit 1; }
	go run ./hack/image -layout $(LOCALBIN)/image -tag $(IMAGE_TAG) -platforms $(IMAGE_PLATFORMS) \
		-push $(REGISTRY):$(IMAGE_TAG) $(if $(PLAIN_HTTP),-plain-http) -digest-file $(LOCALBIN)/image/$(IMAGE_TAG).digest

.PHONY: image-sign
image-sign: cosign ## Sign the image image-push pushed, and each platform's image, with COSIGN_KEY (cosign generate-key-pair); PLAIN_HTTP=1 for a local registry.
	@test -n "$(REGISTRY)" -a -n "$(COSIGN_KEY)" || { echo "Set REGISTRY and COSIGN_KEY, such as: make image-sign REGISTRY=ghcr.io/podium-dev/podium COSIGN_KEY=cosign.key" >&2; exit 1; }
	$(COSIGN) sign --yes --recursive --key $(COSIGN_KEY) --tlog-upload=false $(if $(PLAIN_HTTP),--allow-http-registry) \
		$(REGISTRY)@$$(cat $(LOCALBIN)/image/$(IMAGE_TAG).digest)

# The chart as an OCI artifact: helm install podium oci://CHART_REGISTRY/podium --version VERSION.
.PHONY: chart-push
chart-push: helm ## Package the chart and push it to CHART_REGISTRY (such as ghcr.io/podium-dev/charts) as an OCI artifact; PLAIN_HTTP=1 for a local registry.
	@test -n "$(CHART_REGISTRY)" || { echo "Set CHART_REGISTRY, such as: make chart-push CHART_REGISTRY=ghcr.io/podium-dev/charts" >&2; exit 1; }
	$(HELM) package charts/podium -d $(LOCALBIN)/charts
	$(HELM) push $(LOCALBIN)/charts/podium-$$(sed -n 's/^version: //p' charts/podium/Chart.yaml).tgz oci://$(CHART_REGISTRY) \
		$(if $(PLAIN_HTTP),--plain-http)

# The plugin's release: an archive per platform and the krew manifest (docs/kubectl-podium.md).
.PHONY: plugin-release
plugin-release: ## Build the kubectl-podium archives for every platform, the krew manifest bin/release/podium.yaml and the release notes (CHANGELOG.md's section), for VERSION (such as v0.1.0).
	@test -n "$(VERSION)" || { echo "Set VERSION, such as: make plugin-release VERSION=v0.1.0" >&2; exit 1; }
	go run ./hack/release -version $(VERSION) -out $(LOCALBIN)/release

# The Dockerfile stays for those who build with Docker; make image needs no daemon.
# If you wish to build the manager image targeting other platforms you can use the --platform flag.
# (i.e. docker build --platform linux/arm64). However, you must enable docker buildKit for it.
# More info: https://docs.docker.com/develop/develop-images/build_enhancements/
# Override BASE_IMAGE to build from another registry, e.g.
# make docker-build IMG=<img> BASE_IMAGE=docker.io/library/golang:1.26
.PHONY: docker-build
docker-build: ## Build docker image with the manager.
	$(CONTAINER_TOOL) build $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push docker image with the manager.
	$(CONTAINER_TOOL) push ${IMG}

.PHONY: build-installer
build-installer: manifests generate kustomize ## Generate dist/install.yaml (config/default) with IMG as the manager's and the fetcher's image, such as IMG=ghcr.io/podium-dev/podium:0.1.0@sha256:...
	mkdir -p dist
	KUSTOMIZE="$(KUSTOMIZE)" hack/installer.sh ${IMG} > dist/install.yaml

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install CRDs into the K8s cluster specified in ~/.kube/config.
	@out="$$( "$(KUSTOMIZE)" build config/crd 2>/dev/null || true )"; \
	if [ -n "$$out" ]; then echo "$$out" | "$(KUBECTL)" apply --server-side -f -; else echo "No CRDs to install; skipping."; fi

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall CRDs from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	@out="$$( "$(KUSTOMIZE)" build config/crd 2>/dev/null || true )"; \
	if [ -n "$$out" ]; then echo "$$out" | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -; else echo "No CRDs to delete; skipping."; fi

.PHONY: deploy
deploy: manifests kustomize ## Deploy controller to the K8s cluster specified in ~/.kube/config.
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" apply -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy controller from the K8s cluster specified in ~/.kube/config. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Demo

.PHONY: demo
demo: ## Run the demo on the kwok cluster podium-demo (CRDs, manager, exporter and Prometheus in the background, samples); reruns reuse it.
	hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop the demo manager, exporter and Prometheus, and delete the podium-demo cluster (a no-op when nothing runs).
	hack/demo.sh down

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Tool Binaries
KUBECTL ?= $(KUBE_BIN_DIR)/kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint
HELM ?= $(LOCALBIN)/helm
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0

GOLANGCI_LINT_VERSION ?= v2.13.1
HELM_VERSION ?= v3.22.0
CRD_REF_DOCS_VERSION ?= v0.3.0
.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

# Kubernetes binaries (apiserver, etcd, controller-manager, scheduler, kubectl, kwok) come from
# hack/kube-binaries.sh: downloaded where the release servers answer, built from the Go module
# proxy otherwise, and cached outside the repository.
KUBE_BIN_DIR = $(shell hack/kube-binaries.sh --dir)

.PHONY: kube-binaries
kube-binaries: ## Provision the pinned Kubernetes, etcd and kwok binaries (cached).
	@hack/kube-binaries.sh >/dev/null

# SeaweedFS (weed), the S3-compatible server that the bundle fetcher's tests run against, comes
# from hack/seaweedfs.sh: built from the Go module proxy once and cached outside the repository.
# The tests find it through PODIUM_SEAWEEDFS, exported to every recipe.
export PODIUM_SEAWEEDFS = $(shell hack/seaweedfs.sh --path)

.PHONY: seaweedfs
seaweedfs: ## Provision the pinned SeaweedFS binary for the S3 tests (cached).
	@hack/seaweedfs.sh >/dev/null

# The CNCF Distribution registry, the OCI registry that the oci:// tests run against, comes from
# hack/registry.sh: built from the Go module proxy once and cached outside the repository. The
# tests find it through PODIUM_REGISTRY, exported to every recipe.
export PODIUM_REGISTRY = $(shell hack/registry.sh --path)

.PHONY: registry
registry: ## Provision the pinned OCI registry binary for the oci:// tests (cached).
	@hack/registry.sh >/dev/null

# Prometheus, the server that the online analysis gates' tests query, and promtool, which checks
# the alert rules of docs/operations.md, come from hack/prometheus.sh: built from the Go module
# proxy once (without service discovery or UI assets) and cached outside the repository. The tests
# find them through PODIUM_PROMETHEUS and PODIUM_PROMTOOL, exported to every recipe.
export PODIUM_PROMETHEUS = $(shell hack/prometheus.sh --path)
export PODIUM_PROMTOOL = $(shell hack/prometheus.sh --promtool)

# cosign signs the manager image; hack/image's tests find it through PODIUM_COSIGN, exported to
# every recipe.
export PODIUM_COSIGN = $(shell hack/cosign.sh --path)
COSIGN ?= $(PODIUM_COSIGN)
.PHONY: cosign
cosign: ## Provision the pinned cosign binary for signing the image and for its tests (cached).
	@hack/cosign.sh >/dev/null

# krew installs the plugin in hack/release's test, found through PODIUM_KREW.
export PODIUM_KREW = $(shell hack/krew.sh --path)
.PHONY: krew
krew: ## Provision the pinned krew binary for the plugin release's test (cached).
	@hack/krew.sh >/dev/null

# actionlint checks the release workflow in hack/release's test, found through PODIUM_ACTIONLINT.
export PODIUM_ACTIONLINT = $(shell hack/actionlint.sh --path)
.PHONY: actionlint
actionlint: ## Provision the pinned actionlint binary for the release workflow's test (cached).
	@hack/actionlint.sh >/dev/null

.PHONY: prometheus
prometheus: ## Provision the pinned prometheus and promtool binaries for the tests (cached).
	@hack/prometheus.sh >/dev/null

# Chromium, the headless browser that the page tests drive (internal/testbrowser), is Debian's
# chromium package, which hack/chromium.sh installs with apt when it is missing. The tests find it
# through PODIUM_CHROMIUM, exported to every recipe.
export PODIUM_CHROMIUM = $(shell hack/chromium.sh --path)
.PHONY: chromium
chromium: ## Install Debian's chromium package for the browser tests, unless present (needs root or sudo).
	@hack/chromium.sh >/dev/null

# The screenshots of docs/dashboard.md, taken by the dashboard's browser specs from what it shows.
.PHONY: dashboard-screenshots
dashboard-screenshots: kube-binaries chromium ## Take docs/dashboard/*.png again with the dashboard's browser specs.
	KUBEBUILDER_ASSETS="$(KUBE_BIN_DIR)" PODIUM_SCREENSHOTS="$(CURDIR)/docs/dashboard" go test ./internal/cli -count=1 \
		-run TestCLI -args -ginkgo.focus='dashboard, in a browser'

.PHONY: helm
helm: $(HELM) ## Download helm locally if necessary.
$(HELM): $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Download crd-ref-docs locally if necessary.
$(CRD_REF_DOCS): $(LOCALBIN)
	$(call go-install-tool,$(CRD_REF_DOCS),github.com/elastic/crd-ref-docs,$(CRD_REF_DOCS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef

define gomodver
$(shell go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' $(1) 2>/dev/null)
endef

##@ Benchmarks

.PHONY: bench
bench: kube-binaries build ## Measure promotion latency, cold-start convergence, writes and memory; writes docs/benchmark-results.md.
	KUBEBUILDER_ASSETS="$(KUBE_BIN_DIR)" PODIUM_BIN_DIR="$(LOCALBIN)" BENCH_OUT="$(CURDIR)/docs/benchmark-results.md" \
		go run ./test/bench
