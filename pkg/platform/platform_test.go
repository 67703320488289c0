package platform

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	amd64   = Platform{OS: "linux", Architecture: "amd64"}
	arm64   = Platform{OS: "linux", Architecture: "arm64"}
	arm64v8 = Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	armv7   = Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	armv6   = Platform{OS: "linux", Architecture: "arm", Variant: "v6"}
	windows = Platform{OS: "windows", Architecture: "amd64"}
)

func TestMissingPlatforms(t *testing.T) {
	tests := []struct {
		name        string
		index, node []Platform
		want        []Platform
	}{
		{"arm64-only index on amd64 nodes", []Platform{arm64}, []Platform{amd64}, []Platform{amd64}},
		{"two-platform index on mixed nodes", []Platform{amd64, arm64}, []Platform{arm64, amd64, amd64}, nil},
		{"arm64/v8 is arm64", []Platform{arm64v8}, []Platform{arm64}, nil},
		{"arm64 covers an arm64/v8 node", []Platform{arm64}, []Platform{arm64v8}, nil},
		{"arm v6 does not cover v7", []Platform{armv6}, []Platform{armv7}, []Platform{armv7}},
		{"arm without variant covers v7", []Platform{{OS: "linux", Architecture: "arm"}}, []Platform{armv7}, nil},
		{"OS matters", []Platform{amd64}, []Platform{windows, amd64}, []Platform{windows}},
		{"no nodes: nothing missing", []Platform{arm64}, nil, nil},
		{"empty index covers nothing, duplicates once, sorted", nil, []Platform{arm64, amd64, arm64}, []Platform{amd64, arm64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, MissingPlatforms(tt.index, tt.node)); diff != "" {
				t.Errorf("MissingPlatforms (-want +got):\n%s", diff)
			}
		})
	}
	if got, want := Message([]Platform{amd64}, []Platform{arm64, amd64, amd64}),
		"the image index has no manifest for linux/amd64 (the workload's nodes run linux/amd64, linux/arm64)"; got != want {
		t.Errorf("Message = %q, want %q", got, want)
	}
}

// nodeBuilder makes a Node with a platform, extra labels and taints.
func node(name string, p Platform, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	l := map[string]string{LabelOS: p.OS, LabelArch: p.Architecture}
	for k, v := range labels {
		l[k] = v
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}, Spec: corev1.NodeSpec{Taints: taints}}
}

func TestNodePlatforms(t *testing.T) {
	gpuTaint := corev1.Taint{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}
	preferTaint := corev1.Taint{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule}
	nodes := []*corev1.Node{
		node("amd-a", amd64, map[string]string{"pool": "general"}),
		node("amd-b", amd64, map[string]string{"pool": "general"}, preferTaint),
		node("arm-a", arm64, map[string]string{"pool": "arm"}),
		node("arm-gpu", arm64, map[string]string{"pool": "gpu"}, gpuTaint),
		node("win", windows, map[string]string{"pool": "win"}, corev1.Taint{Key: "os", Value: "windows", Effect: corev1.TaintEffectNoExecute}),
		{ObjectMeta: metav1.ObjectMeta{Name: "from-node-info"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "s390x"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unnamed-platform"}},
	}
	s390x := Platform{OS: "linux", Architecture: "s390x"}
	required := func(key string, op corev1.NodeSelectorOperator, values ...string) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}}}}}
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want []Platform
	}{
		{"no constraints: every untainted node", corev1.PodSpec{}, []Platform{amd64, arm64, s390x}},
		{"nodeSelector on arch", corev1.PodSpec{NodeSelector: map[string]string{LabelArch: "amd64"}}, []Platform{amd64}},
		{"nodeSelector on a pool", corev1.PodSpec{NodeSelector: map[string]string{"pool": "arm"}}, []Platform{arm64}},
		{"required affinity In", corev1.PodSpec{Affinity: required("pool", corev1.NodeSelectorOpIn, "general", "gpu")}, []Platform{amd64}},
		{"required affinity plus toleration", corev1.PodSpec{Affinity: required("pool", corev1.NodeSelectorOpIn, "general", "gpu"),
			Tolerations: []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}}, []Platform{amd64, arm64}},
		{"tolerate everything", corev1.PodSpec{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
			[]Platform{amd64, arm64, s390x, windows}},
		{"NotIn arch (a node without the label matches NotIn)", corev1.PodSpec{Affinity: required(LabelArch, corev1.NodeSelectorOpNotIn, "amd64")}, []Platform{arm64, s390x}},
		{"nothing matches", corev1.PodSpec{NodeSelector: map[string]string{"pool": "none"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, NodePlatforms(&tt.spec, nodes)); diff != "" {
				t.Errorf("NodePlatforms (-want +got):\n%s", diff)
			}
		})
	}
}
