package promote_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	cvfake "cvmanager.dev/cvmanager/pkg/generated/clientset/versioned/fake"
	"cvmanager.dev/cvmanager/pkg/promote"
)

// TestPlanAcrossClusters reads the source from one clientset and the
// target from another, and walks a fake clock through the soak: refused
// while soaking (naming when it ends), planned after.
func TestPlanAcrossClusters(t *testing.T) {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	successAt := metav1.NewTime(start)
	src := cv("web", "r/web", cvv1.ContainerVersionStatus{CurrVersion: "v2", CurrDigest: "sha256:b", CurrStatus: cvv1.StatusSuccess,
		CurrStatusTime: &successAt, SuccessVersion: "v2", SuccessDigest: "sha256:b"})
	dst := cv("web", "r/web", cvv1.ContainerVersionStatus{SuccessVersion: "v1", SuccessDigest: "sha256:a"}, func(s *cvv1.ContainerVersionSpec) {
		s.Promotion = &cvv1.PromotionSpec{From: cvv1.PromotionSource{Namespace: "web", Name: "web", MinSoakSeconds: ptr.To[int32](600),
			ClusterSecretRef: cvv1.SecretKeyReference{Name: "staging"}}}
	})
	clock := clocktesting.NewFakeClock(start.Add(time.Minute))
	p := &promote.Promoter{CVs: cvfake.NewSimpleClientset(dst), Source: cvfake.NewSimpleClientset(src),
		SourceCluster: "staging", TargetCluster: "prod", Clock: clock}
	key := types.NamespacedName{Namespace: "web", Name: "web"}

	_, err := p.Plan(context.Background(), key, key)
	if !errors.Is(err, promote.ErrRefused) || !strings.Contains(err.Error(), "Soaking") || !strings.Contains(err.Error(), "2026-12-07T12:10:00Z") {
		t.Fatalf("while soaking (target's 600 s): %v, want a Soaking refusal naming 12:10:00", err)
	}
	short := time.Duration(0)
	p.MinSoak = &short
	if _, err := p.Plan(context.Background(), key, key); err != nil {
		t.Fatalf("--min-soak 0 overrides the target's soak: %v", err)
	}
	p.MinSoak = nil
	clock.SetTime(start.Add(10 * time.Minute))
	plan, err := p.Plan(context.Background(), key, key)
	if err != nil {
		t.Fatalf("after the soak: %v", err)
	}
	if plan.Digest != "sha256:b" || plan.FromCluster != "staging" || plan.ToCluster != "prod" || plan.Soak == "" {
		t.Errorf("plan = %+v", plan)
	}

	// A drifted source is refused whatever the soak.
	src.Status.Conditions = []metav1.Condition{{Type: cvv1.ConditionDrifted, Status: metav1.ConditionTrue}}
	p.Source = cvfake.NewSimpleClientset(src)
	if _, err := p.Plan(context.Background(), key, key); !errors.Is(err, promote.ErrRefused) || !strings.Contains(err.Error(), cvv1.ReasonSourceDrifted) {
		t.Errorf("drifted source: %v", err)
	}
}
