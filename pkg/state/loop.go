package state

import (
	"context"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// RunLoop exports every interval while isLeader says this replica leads,
// until ctx ends. Failures are logged and retried at the next tick: an
// unreachable bucket must never stop the controller. The first export runs
// at once so a freshly started leader refreshes the heartbeat promptly.
func RunLoop(ctx context.Context, e *Exporter, interval time.Duration, isLeader func() bool) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if isLeader() {
			exportOnce(ctx, e)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func exportOnce(ctx context.Context, e *Exporter) {
	start := time.Now()
	res, err := e.Export(ctx)
	if ctx.Err() == nil {
		e.Metrics.observe(res, time.Since(start), err, time.Now())
	}
	if err != nil {
		if ctx.Err() == nil {
			klog.ErrorS(err, "State export failed", "location", e.Backend.String())
		}
		return
	}
	klog.V(2).InfoS("State exported", "location", res.Location, "cvs", res.CVs, "written", res.Written,
		"deleted", res.Deleted, "duration", res.Duration)
}

// ClusterID is the UID of the kube-system namespace, the usual stable
// identity of a cluster. Reading it needs get on that namespace; where RBAC
// forbids it, pass an explicit id instead.
func ClusterID(ctx context.Context, kube kubernetes.Interface) (string, error) {
	ns, err := kube.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading the cluster id (UID of namespace kube-system; set --cluster-id instead): %w", err)
	}
	return string(ns.UID), nil
}

// DefaultIdentity names this process in a manifest: the pod name
// (POD_NAME, else the host name, which is the pod name in a pod) and the
// user when run by a person.
func DefaultIdentity() string {
	host := os.Getenv("POD_NAME")
	if host == "" {
		host, _ = os.Hostname()
	}
	if user := os.Getenv("USER"); user != "" {
		return user + "@" + host
	}
	return host
}

// Clear removes every state object under the backend's path, refusing
// while another cluster's exporter is alive there unless force, since that
// exporter would just write it back.
func Clear(ctx context.Context, b Backend, force bool, now time.Time) error {
	m, err := ReadManifest(ctx, b)
	if err != nil && !force {
		return fmt.Errorf("%w (pass --force to clear an unreadable path)", err)
	}
	if !force && m != nil && m.Owner.Alive(now) {
		return fmt.Errorf("%w: cluster %s (%s) exports to %s every %s, last %s ago: stop it first, or pass --force",
			ErrOwned, m.Owner.ClusterID, m.Owner.Identity, b, time.Duration(m.Owner.Interval), now.Sub(m.Owner.Heartbeat).Round(time.Second))
	}
	return b.Clear(ctx)
}
