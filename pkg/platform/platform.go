// Package platform is the platform gate: before an image index is rolled
// out, it checks that the index has a manifest for every OS and
// architecture among the nodes the workload can be scheduled to, so a
// missing platform is refused with reason PlatformMissing instead of
// leaving pods in ImagePullBackOff or crashing with "exec format error".
//
// Which nodes a pod template can land on is read the cheap way, from the
// node informer's cache: nodeSelector, required node affinity, and the
// NoSchedule/NoExecute taints its tolerations do not cover. Preferred
// affinity, pod (anti-)affinity, topology spread and resources are not
// considered: they narrow where pods go, never widen it, so the gate may
// ask for a platform the scheduler would not in fact use, never the
// reverse.
//
// The index's platforms are read once per digest (Cache), through the
// registry layer's ArtifactReader, as provenance is: 0 requests in steady
// state.
package platform

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	schedhelpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Platform is an OS and CPU architecture (and variant, e.g. arm v7).
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// String is os/arch[/variant], as images and `docker buildx` name them.
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// covers reports whether an index entry for p runs on node platform n:
// the same OS and architecture, and the same variant when both name one
// (arm64's v8 is what arm64 means when no variant is given).
func (p Platform) covers(n Platform) bool {
	if p.OS != n.OS || p.Architecture != n.Architecture {
		return false
	}
	pv, nv := normVariant(p), normVariant(n)
	return pv == "" || nv == "" || pv == nv
}

func normVariant(p Platform) string {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		return ""
	}
	return p.Variant
}

// MissingPlatforms returns the node platforms no entry of the index
// covers, sorted, without duplicates. An empty index (or none read)
// covers nothing.
func MissingPlatforms(indexPlatforms, nodePlatforms []Platform) []Platform {
	var missing []Platform
	seen := map[Platform]bool{}
	for _, n := range nodePlatforms {
		if seen[n] {
			continue
		}
		seen[n] = true
		covered := false
		for _, p := range indexPlatforms {
			if p.covers(n) {
				covered = true
				break
			}
		}
		if !covered {
			missing = append(missing, n)
		}
	}
	sortPlatforms(missing)
	return missing
}

// Message names the missing platforms for the condition and the history,
// e.g. "the image index has no manifest for linux/amd64 (the workload's
// nodes run linux/amd64, linux/arm64)".
func Message(missing, nodePlatforms []Platform) string {
	return fmt.Sprintf("the image index has no manifest for %s (the workload's nodes run %s)",
		join(missing), join(uniqueSorted(nodePlatforms)))
}

func join(ps []Platform) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.String()
	}
	return strings.Join(names, ", ")
}

// Labels on a Node naming its platform (set by the kubelet).
const (
	LabelOS   = "kubernetes.io/os"
	LabelArch = "kubernetes.io/arch"
)

// OfNode is the node's platform, from its labels, else its nodeInfo;
// ok is false when neither names both OS and architecture.
func OfNode(node *corev1.Node) (p Platform, ok bool) {
	p = Platform{OS: node.Labels[LabelOS], Architecture: node.Labels[LabelArch]}
	if p.OS == "" {
		p.OS = node.Status.NodeInfo.OperatingSystem
	}
	if p.Architecture == "" {
		p.Architecture = node.Status.NodeInfo.Architecture
	}
	return p, p.OS != "" && p.Architecture != ""
}

// NodePlatforms returns the platforms of the nodes a pod built from spec
// can be scheduled to (see the package doc for what is considered),
// sorted, without duplicates. Nodes naming no platform are skipped.
func NodePlatforms(spec *corev1.PodSpec, nodes []*corev1.Node) []Platform {
	pod := &corev1.Pod{Spec: *spec}
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	var out []Platform
	for _, node := range nodes {
		if !Schedulable(pod, affinity, node) {
			continue
		}
		if p, ok := OfNode(node); ok {
			out = append(out, p)
		}
	}
	return uniqueSorted(out)
}

// Schedulable reports whether pod may land on node as far as the gate
// reads it: nodeSelector and required affinity (affinity, from
// nodeaffinity.GetRequiredNodeAffinity(pod)), and every NoSchedule or
// NoExecute taint tolerated. Cordoned nodes count: they come back.
func Schedulable(pod *corev1.Pod, affinity nodeaffinity.RequiredNodeAffinity, node *corev1.Node) bool {
	if ok, err := affinity.Match(node); err != nil || !ok {
		return false
	}
	_, untolerated := schedhelpers.FindMatchingUntoleratedTaint(node.Spec.Taints, pod.Spec.Tolerations,
		func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		})
	return !untolerated
}

// IndexPlatforms returns the platforms an image index's manifest body
// lists (attestation entries, unknown/unknown, are skipped), and whether
// body is an index at all: a single-platform image is not gated.
func IndexPlatforms(mediaType string, body []byte) (platforms []Platform, isIndex bool, err error) {
	if !isIndexType(mediaType) {
		return nil, false, nil
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(body))
	if err != nil {
		return nil, true, fmt.Errorf("parsing image index: %w", err)
	}
	for _, d := range index.Manifests {
		if d.Platform == nil || d.Platform.OS == "" || d.Platform.OS == "unknown" {
			continue
		}
		platforms = append(platforms, Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant})
	}
	return uniqueSorted(platforms), true, nil
}

func isIndexType(mediaType string) bool {
	return mediaType == "application/vnd.oci.image.index.v1+json" ||
		mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
}

func uniqueSorted(ps []Platform) []Platform {
	seen := map[Platform]bool{}
	out := ps[:0:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sortPlatforms(out)
	return out
}

func sortPlatforms(ps []Platform) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
}
