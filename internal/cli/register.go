package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	mlv1 "github.com/podium-dev/podium/api/v1alpha1"
	"github.com/podium-dev/podium/internal/bundle"
)

// dryRunClient is the --dry-run value that prints the manifest instead of creating it.
const dryRunClient = "client"

// dryRunNone is the --dry-run value that creates the ModelVersion.
const dryRunNone = "none"

// maxRegisterAttempts bounds how often register looks for a free version number when concurrent
// registrations keep taking the one it chose.
const maxRegisterAttempts = 20

type registerOptions struct {
	*root
	uri, digest, description string
	runID, experiment        string
	metrics, params          []string
	metricsFile              string
	version                  int64
	dryRun                   string
	output                   string
	pushDir, pushTo          string
	pushFlags
}

func newRegisterCommand(r *root) *cobra.Command {
	o := &registerOptions{root: r}
	cmd := &cobra.Command{
		Use:   "register MODEL (--uri URI | --push DIR --to oci://REGISTRY/REPOSITORY) [--metric NAME=VALUE]...",
		Short: "Register a new version of a model",
		Long: `Register a new version of a model: create the ModelVersion <model>-<version>.

Without --version the version is the next free number: one more than the highest ever registered
(status.latestVersion remembers deleted versions).
Concurrent registrations never get the same number. The RegisteredModel must exist. Metric values
are plain numbers; --metrics-file reads a flat JSON object of numbers, as training scripts write
it, and --metric values override it.`,
		Example: `  # Register the bundle in s3 with two metrics
  kubectl podium register battle-winner-predictor --uri s3://ml-artifacts/battle-winner/4/ \
    --metric test_accuracy=0.8723 --metric overfitting=0.0233 \
    --description "RandomForest - Accuracy: 0.8723"

  # Read the metrics that the training script wrote, and record the run
  kubectl podium register battle-winner-predictor --uri s3://ml-artifacts/battle-winner/5/ \
    --metrics-file metrics.json --param n_estimators=200 --run-id 8f3a --experiment battle_winner_v5

  # Print the manifest instead of creating it
  kubectl podium register battle-winner-predictor --uri s3://ml-artifacts/battle-winner/6/ \
    --metric test_accuracy=0.88 --version 6 --dry-run=client -o yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: r.completeModel,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.uri, "uri", "", "Root of the version's bundle, such as s3://ml-artifacts/battle-winner/4/ (required)")
	f.StringArrayVar(&o.metrics, "metric", nil, "A metric as NAME=NUMBER, such as test_accuracy=0.8723; repeat for more")
	f.StringVar(&o.metricsFile, "metrics-file", "", "A JSON file with the metrics as a flat object of numbers")
	f.StringArrayVar(&o.params, "param", nil, "A training parameter as NAME=VALUE; repeat for more")
	f.StringVar(&o.description, "description", "", "What the version is, such as \"RandomForest - Accuracy: 0.8723\"")
	f.StringVar(&o.digest, "digest", "", "The bundle digest, as printed by kubectl podium digest DIR")
	f.StringVar(&o.runID, "run-id", "", "The training run's identifier")
	f.StringVar(&o.experiment, "experiment", "", "The experiment the run belongs to")
	f.Int64Var(&o.version, "version", 0, "The version number; the next free one when not given")
	f.StringVar(&o.dryRun, "dry-run", dryRunNone, "\"client\" prints the ModelVersion instead of creating it")
	f.Lookup("dry-run").NoOptDefVal = dryRunClient
	f.StringVar(&o.pushDir, "push", "", "Push the bundle in this directory to --to first, and register the pinned reference and the bundle's digest")
	f.StringVar(&o.pushTo, "to", "", "With --push, the repository to push to: oci://REGISTRY/REPOSITORY[:TAG]")
	o.bind(cmd)
	cmd.MarkFlagsMutuallyExclusive("uri", "push")
	cmd.MarkFlagsOneRequired("uri", "push")
	cmd.MarkFlagsRequiredTogether("push", "to")
	_ = cmd.MarkFlagDirname("push")
	_ = cmd.MarkFlagFilename("metrics-file", "json")
	addOutputFlag(cmd, &o.output, formatJSON, formatYAML)
	return cmd
}

func (o *registerOptions) run(ctx context.Context, model string) error {
	if o.dryRun != dryRunNone && o.dryRun != dryRunClient {
		return fmt.Errorf("--dry-run=%s is not supported; use --dry-run=client to print the manifest", o.dryRun)
	}
	if o.version < 0 {
		return fmt.Errorf("--version %d: version numbers start at 1", o.version)
	}
	if o.pushDir != "" {
		if err := o.pushBundle(ctx); err != nil {
			return err
		}
	}
	mv, err := o.manifest(model)
	if err != nil {
		return err
	}
	mv.Namespace, err = o.namespace()
	if err != nil {
		return err
	}
	if o.dryRun == dryRunClient && o.version > 0 {
		setVersion(mv, o.version)
		return o.print(mv, "")
	}

	c, err := o.cluster()
	if err != nil {
		return err
	}
	if _, err := c.model(ctx, model); err != nil {
		return err
	}
	switch {
	case o.dryRun == dryRunClient:
		next, err := c.nextNumber(ctx, model)
		if err != nil {
			return err
		}
		setVersion(mv, next)
		return o.print(mv, "")
	case o.version > 0:
		err = c.createVersion(ctx, mv, o.version)
	default:
		err = c.createNextVersion(ctx, mv)
	}
	if err != nil {
		return err
	}
	return o.print(mv, fmt.Sprintf("Registered version %d of %s as ModelVersion %s in namespace %s\n",
		mv.Spec.Version, model, mv.Name, mv.Namespace))
}

// pushBundle pushes --push to --to, and takes the pinned reference as the URI and the bundle's
// digest as the digest. A dry run would push all the same, since the URI needs the digest, so
// the two do not go together.
func (o *registerOptions) pushBundle(ctx context.Context) error {
	if o.dryRun != dryRunNone {
		return fmt.Errorf("--push uploads the bundle, which a dry run must not do: push it with kubectl podium push, " +
			"then pass the reference it prints to --uri")
	}
	if o.digest != "" {
		return fmt.Errorf("--push computes the bundle's digest itself: leave out --digest")
	}
	digest, err := bundle.Digest(o.pushDir)
	if err != nil {
		return err
	}
	pinned, err := o.push(ctx, o.pushDir, o.pushTo)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(o.streams.ErrOut, "Pushed %s as %s\n", o.pushDir, pinned)
	o.uri, o.digest = pinned, digest
	return nil
}

// print writes the ModelVersion in the -o format, or message without -o.
func (o *registerOptions) print(mv *mlv1.ModelVersion, message string) error {
	mv.SetGroupVersionKind(mlv1.GroupVersion.WithKind("ModelVersion"))
	format := o.output
	if format == formatTable && message == "" {
		format = formatYAML // a dry run has nothing to report but the manifest
	}
	if format == formatTable {
		_, err := fmt.Fprint(o.streams.Out, message)
		return err
	}
	return printData(o.streams.Out, format, mv)
}

// manifest is the ModelVersion that the flags describe, without its version number.
func (o *registerOptions) manifest(model string) (*mlv1.ModelVersion, error) {
	metrics, err := o.readMetrics()
	if err != nil {
		return nil, err
	}
	params, err := parsePairs("--param", o.params, "--param n_estimators=200")
	if err != nil {
		return nil, err
	}
	mv := &mlv1.ModelVersion{
		Spec: mlv1.ModelVersionSpec{
			RegisteredModel: model,
			Description:     o.description,
			Artifact:        mlv1.Artifact{URI: o.uri, Digest: o.digest},
			Metrics:         metrics,
			Params:          params,
		},
	}
	if o.runID != "" || o.experiment != "" {
		mv.Spec.Source = &mlv1.Source{RunID: o.runID, Experiment: o.experiment}
	}
	return mv, nil
}

// readMetrics merges --metrics-file and the --metric flags, which win.
func (o *registerOptions) readMetrics() (map[string]mlv1.Number, error) {
	metrics := map[string]mlv1.Number{}
	if o.metricsFile != "" {
		fromFile, err := metricsFromFile(o.metricsFile)
		if err != nil {
			return nil, err
		}
		maps.Copy(metrics, fromFile)
	}
	pairs, err := parsePairs("--metric", o.metrics, "--metric test_accuracy=0.8723")
	if err != nil {
		return nil, err
	}
	for name, value := range pairs {
		if !isNumber(value) {
			return nil, fmt.Errorf("--metric %s=%s: %q is not a number; metric values are plain numbers, such as %s=0.8723",
				name, value, value, name)
		}
		metrics[name] = mlv1.Number(value)
	}
	if len(metrics) == 0 {
		return nil, nil
	}
	return metrics, nil
}

// metricsFromFile reads a flat JSON object of numbers, such as {"test_accuracy": 0.8723}, as
// Python's json.dump writes a dict of metrics.
func metricsFromFile(path string) (map[string]mlv1.Number, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the metrics file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object of numbers (%v); write the metrics as {\"test_accuracy\": 0.8723, ...}",
			path, err)
	}
	metrics := make(map[string]mlv1.Number, len(raw))
	for name, value := range raw {
		n, ok := value.(json.Number)
		if !ok {
			shown, _ := json.Marshal(value)
			return nil, fmt.Errorf("%s: metric %s is %s, not a number; the file holds a flat object of numbers, such as {\"%s\": 0.8723}",
				path, name, shown, name)
		}
		metrics[name] = mlv1.Number(n)
	}
	return metrics, nil
}

// jsonNumber is the grammar of a JSON number, the only metric value the API accepts.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func isNumber(s string) bool { return jsonNumber.MatchString(s) }

// parsePairs reads NAME=VALUE flags; example shows the flag used right.
func parsePairs(flag string, pairs []string, example string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s %s: want NAME=VALUE, such as %s", flag, p, example)
		}
		out[name] = value
	}
	return out, nil
}

// createVersion creates mv as version n, which no other ModelVersion of the model may claim.
func (c *cluster) createVersion(ctx context.Context, mv *mlv1.ModelVersion, n int64) error {
	versions, err := c.versions(ctx, mv.Spec.RegisteredModel)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if v.Spec.Version == n {
			return fmt.Errorf("version %d of %s already exists (ModelVersion %s); omit --version to take the next free number",
				n, mv.Spec.RegisteredModel, v.Name)
		}
	}
	setVersion(mv, n)
	if err := c.client.Create(ctx, mv); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ModelVersion %s already exists; omit --version to take the next free number", mv.Name)
		}
		return explain(err)
	}
	return nil
}

// createNextVersion creates mv as the model's next version, one more than the highest ever
// registered. The name <model>-<n> is the lock: when a concurrent registration took n first,
// Create fails with AlreadyExists, nothing is overwritten, and the numbers are read again.
func (c *cluster) createNextVersion(ctx context.Context, mv *mlv1.ModelVersion) error {
	var n int64
	for range maxRegisterAttempts {
		next, err := c.nextNumber(ctx, mv.Spec.RegisteredModel)
		if err != nil {
			return err
		}
		// Past n too: a name can be taken by an object the listing does not count.
		n = max(n+1, next)
		setVersion(mv, n)
		err = c.client.Create(ctx, mv)
		if !apierrors.IsAlreadyExists(err) {
			return explain(err)
		}
	}
	return fmt.Errorf("no free version number for %s after %d attempts, as other registrations kept taking them; "+
		"try again, or choose one with --version", mv.Spec.RegisteredModel, maxRegisterAttempts)
}

// nextNumber is one more than the highest version number the model ever had: the highest of its
// versions and its status.latestVersion, which remembers deleted versions, so that a number is
// never given twice (docs/concepts.md).
func (c *cluster) nextNumber(ctx context.Context, model string) (int64, error) {
	m, err := c.model(ctx, model)
	if err != nil {
		return 0, err
	}
	versions, err := c.versions(ctx, model)
	if err != nil {
		return 0, err
	}
	n := highest(versions)
	if l := m.Status.LatestVersion; l != nil {
		n = max(n, *l)
	}
	return n + 1, nil
}

func setVersion(mv *mlv1.ModelVersion, n int64) {
	mv.Name = versionName(mv.Spec.RegisteredModel, n)
	mv.Spec.Version = n
}

// highest is the highest version number among versions, 0 when there are none.
func highest(versions []mlv1.ModelVersion) int64 {
	var n int64
	for _, v := range versions {
		n = max(n, v.Spec.Version)
	}
	return n
}
