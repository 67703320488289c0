package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// newMigrateCommand rewrites the original cvmanager's ContainerVersion
// manifests for this one. Two things differ: the API group, and the
// selector, which the original wrote as a plain label map and which is a
// label selector here (a structural CRD schema cannot take both forms).
func newMigrateCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "migrate -f FILE [-f FILE...]",
		Short: "Rewrite the original cvmanager's ContainerVersion manifests (apiVersion, plain-map selector)",
		Long: `Reads YAML manifests (a file, or - for stdin; several documents per file are
fine) and prints them with every ContainerVersion rewritten for cvmanager:

  apiVersion: custom.k8s.io/v1     ->  apiVersion: ` + cvv1.SchemeGroupVersion.String() + `
  selector: {app: web}             ->  selector: {matchLabels: {app: web}}

Other documents are printed unchanged. A rewritten document is re-serialised,
so its comments are not kept. Apply the result with kubectl apply -f -.`,
		Example: `  cvmanager migrate -f old/web-cv.yaml | kubectl apply -f -
  cat old/*.yaml | cvmanager migrate -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("-f is required: a manifest file, or - for stdin")
			}
			for i, f := range files {
				in, err := readManifest(f, cmd.InOrStdin())
				if err != nil {
					return err
				}
				out, err := MigrateManifests(in)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				if i > 0 {
					_, _ = io.WriteString(cmd.OutOrStdout(), "---\n")
				}
				if _, err := cmd.OutOrStdout().Write(out); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file to rewrite, - for stdin (repeatable)")
	return cmd
}

func readManifest(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

// documentSeparator splits a YAML stream into documents.
var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// MigrateManifests rewrites every ContainerVersion of a YAML stream (see
// `cvmanager migrate`) and keeps the other documents byte for byte.
func MigrateManifests(in []byte) ([]byte, error) {
	docs := documentSeparator.Split(string(in), -1)
	var out []string
	for i, doc := range docs {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		migrated, err := migrateDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, strings.TrimLeft(migrated, "\n"))
	}
	var b bytes.Buffer
	for i, doc := range out {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(doc)
		if !strings.HasSuffix(doc, "\n") {
			b.WriteString("\n")
		}
	}
	return b.Bytes(), nil
}

// migrateDocument rewrites one document when it is a ContainerVersion.
func migrateDocument(doc string) (string, error) {
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		return "", err
	}
	if obj["kind"] != "ContainerVersion" {
		return doc, nil
	}
	obj["apiVersion"] = cvv1.SchemeGroupVersion.String()
	if spec, ok := obj["spec"].(map[string]any); ok {
		selector, err := migrateSelector(spec["selector"])
		if err != nil {
			return "", err
		}
		if selector != nil {
			spec["selector"] = selector
		}
	}
	data, err := yaml.Marshal(obj)
	return string(data), err
}

// migrateSelector turns a plain label map into {matchLabels: map}; a label
// selector is returned as it is. A map mixing both forms is refused, since
// which one was meant cannot be known.
func migrateSelector(v any) (any, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return v, nil
	}
	_, hasLabels := m["matchLabels"]
	_, hasExpressions := m["matchExpressions"]
	structured := 0
	if hasLabels {
		structured++
	}
	if hasExpressions {
		structured++
	}
	switch {
	case structured == len(m):
		return m, nil
	case structured > 0:
		return nil, fmt.Errorf("spec.selector mixes matchLabels/matchExpressions with plain labels; keep one form")
	}
	labels := map[string]any{}
	for k, val := range m {
		s, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("spec.selector.%s: a label value must be a string, got %v", k, val)
		}
		labels[k] = s
	}
	return map[string]any{"matchLabels": labels}, nil
}
