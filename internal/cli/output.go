package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// Output formats, chosen with -o.
const (
	formatTable = ""
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatCSV   = "csv"
)

// addOutputFlag adds -o with the formats a command supports besides its default.
func addOutputFlag(cmd *cobra.Command, target *string, formats ...string) {
	cmd.Flags().StringVarP(target, "output", "o", formatTable, "Output format: "+strings.Join(formats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if *target != formatTable && !slices.Contains(formats, *target) {
			return fmt.Errorf("unknown output format %q; use one of: %s", *target, strings.Join(formats, ", "))
		}
		return nil
	}
}

// printData writes v as JSON or YAML.
func printData(w io.Writer, format string, v any) error {
	if format == formatYAML {
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // gate messages hold "<" and ">"
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// age renders how long ago t was, as kubectl's AGE column does.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// timestamp renders a history time in UTC.
func timestamp(t metav1.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// orDash shows an empty value as "-".
func orDash[T ~string](s T) string {
	if s == "" {
		return "-"
	}
	return string(s)
}
