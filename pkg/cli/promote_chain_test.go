package cli

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/fake"
)

func serviceCV(ns, order string) *cvv1.ContainerVersion {
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Labels: map[string]string{DefaultServiceLabel: "web"}}}
	if order != "" {
		cv.Annotations = map[string]string{EnvOrderAnnotation: order}
	}
	return cv
}

// TestPromoteEnvChain: --env takes the source from the chain declared on
// the service's CVs (or --env-order), and refuses what the chain cannot
// answer.
func TestPromoteEnvChain(t *testing.T) {
	declared := fake.NewSimpleClientset(serviceCV("dev", "dev,staging,prod"), serviceCV("staging", ""), serviceCV("prod", "dev, staging, prod"))
	conflicting := fake.NewSimpleClientset(serviceCV("dev", "dev,staging,prod"), serviceCV("prod", "dev,prod"))
	undeclared := fake.NewSimpleClientset(serviceCV("dev", ""), serviceCV("prod", ""))
	cases := []struct {
		name             string
		o                promoteOptions
		cvs              *fake.Clientset
		wantFrom, wantTo string
		wantErr          string
	}{
		{"chain from the annotation", promoteOptions{env: "prod"}, declared, "staging", "prod", ""},
		{"second step", promoteOptions{env: "staging"}, declared, "dev", "staging", ""},
		{"first has no source", promoteOptions{env: "dev"}, declared, "", "", "first of the chain dev → staging → prod"},
		{"unknown env", promoteOptions{env: "qa"}, declared, "", "", `"qa" is not in the chain`},
		{"flag wins", promoteOptions{env: "prod", envOrder: "dev,prod"}, conflicting, "dev", "prod", ""},
		{"CVs disagree", promoteOptions{env: "prod"}, conflicting, "", "", "declare different chains"},
		{"no chain", promoteOptions{env: "prod"}, undeclared, "", "", "declares no environment chain"},
		{"--env with --from", promoteOptions{env: "prod", from: "dev"}, declared, "", "", "leave out --from and --to"},
		{"neither", promoteOptions{}, declared, "", "", `required flag(s) "from", "to" not set`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.service = serviceFlags{service: "web", label: DefaultServiceLabel}
			err := o.resolveChain(context.Background(), tc.cvs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || o.from != tc.wantFrom || o.to != tc.wantTo {
				t.Fatalf("from %q to %q (%v), want %q → %q", o.from, o.to, err, tc.wantFrom, tc.wantTo)
			}
		})
	}
}
