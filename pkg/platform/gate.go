package platform

import (
	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Verdict is the platform gate's answer for one digest and workload set.
type Verdict struct {
	// Allowed: roll out. Pending: the index is being read (requeue when
	// the cache calls back; do not roll yet). Otherwise refused with
	// Reason (PlatformMissing) and Message.
	Allowed, Pending bool
	Reason, Message  string
	Missing          []Platform
}

// Gate decides from a Cache lookup (idx, known) and the node platforms of
// the workloads the CV selects (NodePlatforms of each pod template,
// together). A plain image (not an index) and a workload set with no
// known node platform pass: there is nothing to compare.
func Gate(idx Index, known bool, nodePlatforms []Platform) Verdict {
	switch {
	case len(nodePlatforms) == 0:
		return Verdict{Allowed: true}
	case !known:
		return Verdict{Pending: true, Message: "reading the image index's platforms"}
	case idx.Err != nil:
		return Verdict{Reason: cvv1.ReasonPlatformMissing, Message: "cannot read the image index to check its platforms: " + idx.Err.Error()}
	case !idx.IsIndex:
		return Verdict{Allowed: true}
	}
	missing := MissingPlatforms(idx.Platforms, nodePlatforms)
	if len(missing) == 0 {
		return Verdict{Allowed: true}
	}
	return Verdict{Reason: cvv1.ReasonPlatformMissing, Message: Message(missing, nodePlatforms), Missing: missing}
}
