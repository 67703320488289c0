package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/provenance"
)

// DefaultServiceLabel groups ContainerVersions into services: the
// Kubernetes recommended application-name label.
const DefaultServiceLabel = "app.kubernetes.io/name"

// serviceFlags say how CVs form services and environments: a service is
// the CVs sharing a value of label; an environment is the namespace, or the
// value of envLabel when set.
type serviceFlags struct {
	service  string
	label    string
	envLabel string
}

func (s *serviceFlags) addLabelFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.label, "label", DefaultServiceLabel, "label whose value names a ContainerVersion's service")
	fs.StringVar(&s.envLabel, "env-label", "", "label whose value names a ContainerVersion's environment (default: its namespace)")
}

// environment is where cv runs, for grouping.
func (s *serviceFlags) environment(cv *cvv1.ContainerVersion) string {
	if s.envLabel != "" {
		if env := cv.Labels[s.envLabel]; env != "" {
			return env
		}
	}
	return cv.Namespace
}

// resolve turns a --from/--to value into a CV: namespace/name, or with a
// service the one CV of that service in the environment.
func (s *serviceFlags) resolve(ctx context.Context, cvs versioned.Interface, value, defaultNamespace string) (types.NamespacedName, error) {
	if s.service == "" {
		return splitKey(value, defaultNamespace)
	}
	list, err := s.list(ctx, cvs)
	if err != nil {
		return types.NamespacedName{}, err
	}
	var found []types.NamespacedName
	for i := range list {
		if s.environment(&list[i]) == value {
			found = append(found, types.NamespacedName{Namespace: list[i].Namespace, Name: list[i].Name})
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return types.NamespacedName{}, fmt.Errorf("no ContainerVersion labelled %s=%s in environment %q", s.label, s.service, value)
	default:
		return types.NamespacedName{}, fmt.Errorf("%d ContainerVersions labelled %s=%s in environment %q (%v): name one as namespace/name",
			len(found), s.label, s.service, value, found)
	}
}

// list returns the CVs of the service, or of every service when none is
// named, in all namespaces.
func (s *serviceFlags) list(ctx context.Context, cvs versioned.Interface) ([]cvv1.ContainerVersion, error) {
	op, values := selection.Exists, []string(nil)
	if s.service != "" {
		op, values = selection.Equals, []string{s.service}
	}
	req, err := labels.NewRequirement(s.label, op, values)
	if err != nil {
		return nil, fmt.Errorf("--label: %w", err)
	}
	list, err := cvs.CvmanagerV1alpha1().ContainerVersions(metav1.NamespaceAll).List(ctx,
		metav1.ListOptions{LabelSelector: labels.NewSelector().Add(*req).String()})
	if err != nil {
		return nil, fmt.Errorf("listing ContainerVersions: %w", err)
	}
	return list.Items, nil
}

// ServiceStatus is what runs in one environment of a service.
type ServiceStatus struct {
	Service     string `json:"service"`
	Environment string `json:"environment"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	Tag         string `json:"tag"`
	Version     string `json:"version,omitempty"`
	Digest      string `json:"digest,omitempty"`
	Status      string `json:"status,omitempty"`
	// SuccessVersion is the last-known-good, what promotion would take.
	SuccessVersion string `json:"successVersion,omitempty"`
	// Available is a version detected but held back (Manual mode, policy).
	Available string `json:"available,omitempty"`
	// HeldUntil is when Available becomes eligible on its own (minAge, soak).
	HeldUntil *time.Time `json:"heldUntil,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
	// Provenance is where the running (or rolling out) image was built
	// from: revision, source, created, authors, url, ciLink.
	Provenance *cvv1.Provenance `json:"provenance,omitempty"`
}

// runningProvenance is the provenance of what the CV runs: the rollout's
// image while one is under way, else the last good one's.
func runningProvenance(st *cvv1.ContainerVersionStatus) *cvv1.Provenance {
	if st.Rollout != nil && st.Rollout.Digest == st.CurrDigest {
		return st.Rollout.Provenance
	}
	if st.CurrDigest == st.SuccessDigest {
		return st.Provenance
	}
	return nil
}

func newStatusCommand(kube *KubeFlags) *cobra.Command {
	s := &serviceFlags{}
	var output string
	fl := &fleetFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what runs in each environment, by service",
		Long: `Show, for one service or all, the version each environment runs: the
ContainerVersions sharing a value of --label (default ` + DefaultServiceLabel + `),
one row per environment (the namespace, or the value of --env-label).

With --contexts (or --all-contexts) it reads several clusters at once, one
LIST each, and prints a matrix: one row per ContainerVersion (namespace/name),
one column per cluster, each cell "version state since" plus "drifted" or
"held <version>"; a * marks rows whose clusters run different versions. A
cluster that cannot be read is shown as unreachable, never as empty.`,
		Example: `  cvmanager status --service web
  cvmanager status --contexts dev,staging,prod
  cvmanager status --all-contexts -o json
  cvmanager status --label app --env-label example.com/environment -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("unknown output format %q: use text or json", output)
			}
			if fl.enabled() {
				return s.runFleet(cmd.Context(), cmd.OutOrStdout(), output, kube, fl)
			}
			_, cvClient, err := clients(kube)
			if err != nil {
				return err
			}
			list, err := s.list(cmd.Context(), cvClient)
			if err != nil {
				return err
			}
			rows := s.rows(list)
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return printServiceStatus(cmd.OutOrStdout(), rows, time.Now())
		},
	}
	cmd.Flags().StringVar(&s.service, "service", "", "the service to show (default: every service)")
	s.addLabelFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output: text or json")
	cmd.Flags().StringSliceVar(&fl.contexts, "contexts", nil, "kubeconfig contexts to read, one column each (a,b,c)")
	cmd.Flags().BoolVar(&fl.allContexts, "all-contexts", false, "read every context of the kubeconfig")
	return cmd
}

// rows are the CVs as status rows, sorted by service, environment, name.
func (s *serviceFlags) rows(list []cvv1.ContainerVersion) []ServiceStatus {
	rows := make([]ServiceStatus, 0, len(list))
	for i := range list {
		cv := &list[i]
		st := cv.Status
		row := ServiceStatus{Service: cv.Labels[s.label], Environment: s.environment(cv), Namespace: cv.Namespace,
			Name: cv.Name, Tag: cv.Spec.Tag, Version: st.CurrVersion, Digest: st.CurrDigest, Status: st.CurrStatus,
			SuccessVersion: st.SuccessVersion, Available: st.AvailableVersion, Provenance: runningProvenance(&st)}
		if st.CurrStatusTime != nil {
			t := st.CurrStatusTime.Time
			row.Since = &t
		}
		if st.HeldUntil != nil && st.AvailableVersion != "" {
			t := st.HeldUntil.Time
			row.HeldUntil = &t
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Environment != b.Environment {
			return a.Environment < b.Environment
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	return rows
}

func printServiceStatus(w io.Writer, rows []ServiceStatus, now time.Time) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no ContainerVersions found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tENVIRONMENT\tCV\tTAG\tVERSION\tDIGEST\tREVISION\tSTATUS\tSINCE\tLAST GOOD\tHELD")
	for _, r := range rows {
		since := "-"
		if r.Since != nil {
			since = now.Sub(*r.Since).Round(time.Second).String()
		}
		revision := ""
		if r.Provenance != nil {
			revision = provenance.ShortRevision(r.Provenance.Revision)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Service, r.Environment, r.Namespace, r.Name,
			r.Tag, orDash(r.Version), orDash(shortDigest(r.Digest)), orDash(revision), orDash(r.Status), since,
			orDash(r.SuccessVersion), orDash(heldText(r)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printProvenance(w, rows)
}

// printProvenance lists, per environment, where its image was built from:
// too long for table columns, so one block each after the table.
func printProvenance(w io.Writer, rows []ServiceStatus) error {
	first := true
	for _, r := range rows {
		p := r.Provenance
		if p == nil {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		fmt.Fprintf(w, "%s %s (%s/%s) %s\n", r.Service, r.Environment, r.Namespace, r.Name, orDash(r.Version))
		for _, f := range [][2]string{{"revision", p.Revision}, {"source", p.Source}, {"authors", p.Authors},
			{"created", p.Created}, {"url", p.URL}, {"ci", p.CILink}} {
			if f[1] != "" {
				if _, err := fmt.Fprintf(w, "  %-9s %s\n", f[0]+":", oneLine(f[1])); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// oneLine keeps an image's label on its line: control characters (a
// newline, a terminal escape) are shown as spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// shortDigest keeps a digest recognisable in a table: sha256:<12 hex>.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// runFleet prints the matrix across clusters: every CV, or the service's.
func (s *serviceFlags) runFleet(ctx context.Context, out io.Writer, output string, kube *KubeFlags, fl *fleetFlags) error {
	names, err := fl.contextNames(kube)
	if err != nil {
		return err
	}
	selector := labels.Everything()
	if s.service != "" {
		req, err := labels.NewRequirement(s.label, selection.Equals, []string{s.service})
		if err != nil {
			return fmt.Errorf("--label: %w", err)
		}
		selector = labels.NewSelector().Add(*req)
	}
	return printFleet(out, output, readFleet(ctx, kube, names, selector), time.Now())
}

// heldText is the held version, with when it becomes eligible when known.
func heldText(r ServiceStatus) string {
	if r.Available == "" || r.HeldUntil == nil {
		return r.Available
	}
	return r.Available + " until " + r.HeldUntil.UTC().Format(time.RFC3339)
}
