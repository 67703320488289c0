package apitest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

func minAge(d time.Duration) func(*spec) {
	return func(s *spec) { s.Policy = &cvv1.PolicySpec{MinAge: &metav1.Duration{Duration: d}} }
}

func promotion(edit func(*cvv1.PromotionSource)) func(*spec) {
	return func(s *spec) {
		from := cvv1.PromotionSource{ClusterSecretRef: cvv1.SecretKeyReference{Name: "staging"}, Namespace: "shop", Name: "web"}
		edit(&from)
		s.Promotion = &cvv1.PromotionSpec{From: from}
	}
}

// fleetCorpus covers the constraints of policy.minAge and promotion.from.
var fleetCorpus = []invalidCV{
	{"policy.minAge", "negative", minAge(-time.Hour), []string{"policy.minAge must be a duration"}},
	{"policy.minAge", "over a year", minAge(9000 * time.Hour), []string{"policy.minAge must be a duration", "at most 8760h"}},
	{"promotion.from.clusterSecretRef.name", "missing", promotion(func(f *cvv1.PromotionSource) { f.ClusterSecretRef.Name = "" }),
		[]string{"spec.promotion.from.clusterSecretRef.name"}},
	{"promotion.from.namespace", "missing", promotion(func(f *cvv1.PromotionSource) { f.Namespace = "" }), []string{"spec.promotion.from.namespace"}},
	{"promotion.from.name", "missing", promotion(func(f *cvv1.PromotionSource) { f.Name = "" }), []string{"spec.promotion.from.name"}},
	{"promotion.from.minSoakSeconds", "negative", promotion(func(f *cvv1.PromotionSource) { f.MinSoakSeconds = ptr.To[int32](-1) }),
		[]string{"spec.promotion.from.minSoakSeconds"}},
	{"promotion.from.minSoakSeconds", "over 30 days", promotion(func(f *cvv1.PromotionSource) { f.MinSoakSeconds = ptr.To[int32](2592001) }),
		[]string{"spec.promotion.from.minSoakSeconds", "less than or equal to 2592000"}},
}

// TestFleetFieldsAtAdmission: bad minAge and promotion specs are refused
// with the field named; good ones are accepted with their defaults.
func TestFleetFieldsAtAdmission(t *testing.T) {
	ctx, client, ns := setup(t)
	for i, tc := range fleetCorpus {
		t.Run(tc.field+": "+tc.why, func(t *testing.T) {
			cv := gen.CV(ns, fmt.Sprintf("fleet-%d", i), gen.WithSpec(tc.edit))
			_, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal does not say %q:\n%v", want, err)
				}
			}
		})
	}
	for i, edit := range []func(*spec){minAge(90 * time.Minute), minAge(0), promotion(func(*cvv1.PromotionSource) {})} {
		cv := gen.CV(ns, fmt.Sprintf("fleet-ok-%d", i), gen.WithSpec(edit))
		got, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("valid spec %d refused: %v", i, err)
		}
		if p := got.Spec.Promotion; p != nil && (p.From.MinSoakSeconds == nil || *p.From.MinSoakSeconds != 3600 || p.From.ClusterSecretRef.Key != "kubeconfig") {
			t.Errorf("promotion defaults: %+v", p.From)
		}
		if m := got.Spec.Policy; m != nil && i == 0 && m.MinAge.Duration != 90*time.Minute {
			t.Errorf("minAge round trip: %v", m.MinAge)
		}
	}
	// A soak of 0 (take a version as soon as the source succeeds) is kept
	// through a typed client, as `state import` creates CVs, not defaulted
	// to an hour.
	noSoak := gen.CV(ns, "fleet-no-soak", gen.WithSpec(promotion(func(f *cvv1.PromotionSource) { f.MinSoakSeconds = ptr.To[int32](0) })))
	got, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, noSoak, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("minSoakSeconds 0 refused: %v", err)
	}
	if s := got.Spec.Promotion.From.MinSoakSeconds; s == nil || *s != 0 {
		t.Errorf("minSoakSeconds 0 came back as %v", s)
	}
}
