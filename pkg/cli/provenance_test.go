package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/dashboard"
)

const (
	digestOne = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digestTwo = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// TestStatusServiceShowsProvenance: per environment, the table names the
// short revision of what runs and a block after it gives revision, source,
// authors, created and CI link; an environment mid-rollout shows the new
// image's, one without provenance none; control characters in a label
// cannot break the layout.
func TestStatusServiceShowsProvenance(t *testing.T) {
	cv := func(ns string, st cvv1.ContainerVersionStatus) cvv1.ContainerVersion {
		return cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Labels: map[string]string{DefaultServiceLabel: "web"}},
			Spec: cvv1.ContainerVersionSpec{Tag: "env-" + ns}, Status: st}
	}
	list := []cvv1.ContainerVersion{
		cv("prod", cvv1.ContainerVersionStatus{CurrVersion: "v1", CurrDigest: digestOne, SuccessDigest: digestOne, CurrStatus: cvv1.StatusSuccess,
			Provenance: &cvv1.Provenance{Revision: "0123456789abcdef0123456789abcdef01234567", Source: "https://git.example/web",
				Authors: "Ann\n<ann@example.com>", Created: "2026-11-01T10:00:00Z", URL: "https://web.example", CILink: "https://ci.example/runs/1"}}),
		cv("staging", cvv1.ContainerVersionStatus{CurrVersion: "v2", CurrDigest: digestTwo, SuccessDigest: digestOne, CurrStatus: cvv1.StatusProgressing,
			Provenance: &cvv1.Provenance{Revision: "old"},
			Rollout:    &cvv1.RolloutStatus{Digest: digestTwo, Provenance: &cvv1.Provenance{Revision: "feature-x"}}}),
		cv("dev", cvv1.ContainerVersionStatus{CurrVersion: "v3", CurrDigest: digestTwo, SuccessDigest: digestTwo, CurrStatus: cvv1.StatusSuccess}),
	}
	s := &serviceFlags{label: DefaultServiceLabel}
	var out bytes.Buffer
	if err := printServiceStatus(&out, s.rows(list), time.Now()); err != nil {
		t.Fatal(err)
	}
	want := `SERVICE  ENVIRONMENT  CV           TAG          VERSION  DIGEST               REVISION   STATUS       SINCE  LAST GOOD  HELD
web      dev          dev/web      env-dev      v3       sha256:222222222222  -          Success      -      -          -
web      prod         prod/web     env-prod     v1       sha256:111111111111  0123456    Success      -      -          -
web      staging      staging/web  env-staging  v2       sha256:222222222222  feature-x  Progressing  -      -          -

web prod (prod/web) v1
  revision: 0123456789abcdef0123456789abcdef01234567
  source:   https://git.example/web
  authors:  Ann <ann@example.com>
  created:  2026-11-01T10:00:00Z
  url:      https://web.example
  ci:       https://ci.example/runs/1
web staging (staging/web) v2
  revision: feature-x
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("status --service (-want +got):\n%s", diff)
	}
}

// TestCVGetWideShowsRevision: -o wide adds a REVISION column with the
// short revision and a GIT column with the write-back; rows without them
// show a dash.
func TestCVGetWideShowsRevision(t *testing.T) {
	rows := []dashboard.Row{
		{Namespace: "shop", Type: "Deployment", Name: "web", CV: "web", Tag: "env-prod", Version: "v1", Status: "Success",
			Image: "r/web:v1@" + digestOne, Provenance: &dashboard.Provenance{Revision: "0123456789abcdef0123456789abcdef01234567"}},
		{Namespace: "shop", Type: "Deployment", Name: "api", CV: "api", Tag: "env-prod", Version: "v2", Status: "Success",
			Image: "r/api:v2@" + digestTwo, WriteBack: "Written 5eb63bb"},
	}
	var out bytes.Buffer
	if err := printTable(&out, rows, true); err != nil {
		t.Fatal(err)
	}
	want := `NAMESPACE  WORKLOAD        CV   TAG       VERSION  PODS  STATUS   UPDATED  RUNNING                                                                           SIGNER  REVISION  GIT              HELD
shop       Deployment/web  web  env-prod  v1       0/0   Success  -        r/web:v1@sha256:1111111111111111111111111111111111111111111111111111111111111111  -       0123456   -                -
shop       Deployment/api  api  env-prod  v2       0/0   Success  -        r/api:v2@sha256:2222222222222222222222222222222222222222222222222222222222222222  -       -         Written 5eb63bb  -
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("cv get -o wide (-want +got):\n%s", diff)
	}
	out.Reset()
	if err := printTable(&out, rows, false); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out.Bytes(), []byte("REVISION")) {
		t.Errorf("the narrow table shows REVISION:\n%s", out.String())
	}
}

// TestCVGetHelpNamesTheWideColumns: `cv get -o` help lists every column
// -o wide adds, as printTable prints them.
func TestCVGetHelpNamesTheWideColumns(t *testing.T) {
	var out bytes.Buffer
	if err := printTable(&out, nil, true); err != nil {
		t.Fatal(err)
	}
	narrow := bytes.Buffer{}
	if err := printTable(&narrow, nil, false); err != nil {
		t.Fatal(err)
	}
	added := strings.Fields(strings.TrimPrefix(strings.TrimSpace(out.String()), strings.TrimSpace(narrow.String())))
	cmd, _, err := NewRootCommand().Find([]string{"cv", "get"})
	if err != nil {
		t.Fatal(err)
	}
	usage := cmd.Flags().Lookup("output").Usage
	for _, col := range added {
		if !strings.Contains(usage, col) {
			t.Errorf("cv get -o help %q does not name the wide column %s", usage, col)
		}
	}
	if len(added) == 0 {
		t.Fatal("-o wide adds no column: the check checks nothing")
	}
}
