package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"cvmanager.dev/cvmanager/pkg/authz"
)

// newCVStampCommand writes the author annotations the admission policy
// asks for into ContainerVersion manifests, from the API server's own
// answer to "who am I", so `kubectl apply` passes:
//
//	cvmanager cv stamp -f cv.yaml | kubectl apply -f -
//	kubectl get cv -A -o yaml | cvmanager cv stamp | kubectl apply -f -   # vouch for existing CVs
//
// Other objects in the stream pass through unchanged.
func newCVStampCommand(kube *KubeFlags) *cobra.Command {
	var file string
	var noGroups bool
	cmd := &cobra.Command{
		Use:   "stamp -f FILE",
		Short: "Set the author annotations of ContainerVersion manifests to you (pipe into kubectl apply)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := openInput(cmd, file)
			if err != nil {
				return err
			}
			kubeClient, _, err := clients(kube)
			if err != nil {
				return err
			}
			id, err := authz.WhoAmI(cmd.Context(), kubeClient)
			if err != nil {
				return err
			}
			if noGroups {
				id.Groups = nil
			}
			return stampManifests(in, cmd.OutOrStdout(), id)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "-", "manifest file (YAML, documents separated by ---); - reads stdin")
	cmd.Flags().BoolVar(&noGroups, "no-groups", false, "record no groups: only rights granted to your user name count")
	return cmd
}

func openInput(cmd *cobra.Command, file string) (io.Reader, error) {
	if file == "-" {
		return cmd.InOrStdin(), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(data), nil
}

// stampManifests rewrites each ContainerVersion document of in.
func stampManifests(in io.Reader, out io.Writer, id authz.Identity) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var docs []string
	for _, doc := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "\n")) == "" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			return fmt.Errorf("reading manifest: %w", err)
		}
		stampObject(obj.Object, id)
		if items, ok := obj.Object["items"].([]any); ok && obj.IsList() { // kubectl get -o yaml
			for _, item := range items {
				if m, ok := item.(map[string]any); ok {
					stampObject(m, id)
				}
			}
		}
		text, err := yaml.Marshal(obj.Object)
		if err != nil {
			return err
		}
		docs = append(docs, string(text))
	}
	_, err = io.WriteString(out, strings.Join(docs, "---\n"))
	return err
}

// stampObject sets the author annotations of a ContainerVersion.
func stampObject(object map[string]any, id authz.Identity) {
	obj := &unstructured.Unstructured{Object: object}
	if obj.GetKind() != "ContainerVersion" {
		return
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[authz.AnnotationAuthor] = id.User
	delete(ann, authz.AnnotationGroups)
	if len(id.Groups) > 0 {
		ann[authz.AnnotationGroups] = strings.Join(id.Groups, ",")
	}
	obj.SetAnnotations(ann)
}
