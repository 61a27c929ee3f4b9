// Package alertrules checks the Prometheus alert rules that docs/operations.md tells operators to
// install, with the real promtool (PODIUM_PROMTOOL, which make test-unit sets to the path that
// hack/prometheus.sh --promtool prints): a rule a reader copies must load in Prometheus.
package alertrules

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// EnvPromtool names the promtool binary.
const EnvPromtool = "PODIUM_PROMTOOL"

const doc = "../../docs/operations.md"

// alertRules returns the YAML code block that follows the line "Alert rules:" in the Markdown
// text md, and says whether there is one. As in CommonMark, the end of the text closes a block.
func alertRules(md string) (string, bool) {
	var block []string
	state := "before" // then "heading", "block", "done"
	sc := bufio.NewScanner(strings.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case state == "before" && strings.TrimSpace(line) == "Alert rules:":
			state = "heading"
		case state == "heading" && strings.TrimSpace(line) == "```yaml":
			state = "block"
		case state == "heading" && strings.TrimSpace(line) != "":
			return "", false // something else comes before the block
		case state == "block" && strings.TrimSpace(line) == "```":
			state = "done"
		case state == "block":
			block = append(block, line)
		}
	}
	if state != "block" && state != "done" {
		return "", false
	}
	return strings.Join(block, "\n") + "\n", true
}

func TestAlertRulesFindsTheBlock(t *testing.T) {
	for name, md := range map[string]string{
		"a closed block": "Queries:\n\n```promql\nup\n```\n\n" +
			"Alert rules:\n\n```yaml\ngroups:\n- name: x\n```\n\nMore.\n",
		"a block the end of the text closes": "Alert rules:\n\n```yaml\ngroups:\n- name: x\n",
	} {
		if got, ok := alertRules(md); !ok || got != "groups:\n- name: x\n" {
			t.Errorf("%s: alertRules = %q, %v; want the yaml block", name, got, ok)
		}
	}
	for name, md := range map[string]string{
		"no heading":           "```yaml\ngroups: []\n```\n",
		"prose before a block": "Alert rules:\n\nSee below.\n\n```yaml\ngroups: []\n```\n",
		"no block":             "Alert rules:\n\n",
	} {
		if got, ok := alertRules(md); ok {
			t.Errorf("%s: alertRules = %q, want none", name, got)
		}
	}
}

func TestDocumentedAlertRulesPassPromtool(t *testing.T) {
	md, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	rules, ok := alertRules(string(md))
	if !ok {
		t.Fatalf("%s has no ```yaml code block right after the line \"Alert rules:\"", doc)
	}
	if !strings.HasPrefix(rules, "groups:") {
		t.Fatalf("the alert rules of %s do not start with groups:\n%s", doc, rules)
	}
	promtool := os.Getenv(EnvPromtool)
	if promtool == "" {
		t.Skip(EnvPromtool + " is not set: run `make test-unit` (or set it to the path printed by " +
			"hack/prometheus.sh --promtool) to check the documented alert rules")
	}
	file := filepath.Join(t.TempDir(), "podium-rules.yaml")
	if err := os.WriteFile(file, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules rejects the alert rules of %s (%v):\n%s\nThe rules:\n%s", doc, err, out, rules)
	}
	t.Logf("promtool check rules:\n%s", out)
}
