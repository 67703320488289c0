package controlplane

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// NodeName is the fake node kwok manages; every test pod lands on it.
const NodeName = "kwok-node-0"

// startNode starts kwok and registers one fake node, waiting until it is
// Ready and its not-ready taints are gone so the scheduler places pods.
func (c *ControlPlane) startNode(ctx context.Context) error {
	stages, err := c.stagesFile()
	if err != nil {
		return err
	}
	// --config is explicit and HOME private (minimalEnv), so a
	// ~/.kwok/kwok.yaml on the machine changes nothing. The node Lease is
	// the heartbeat: without it the node's status heartbeat (every 10 min
	// in the with-lease stage) comes later than the node lifecycle
	// controller's grace period and every pod on the node turns un-Ready.
	if _, err := c.launch("kwok",
		"--kubeconfig="+c.KubeconfigPath(), "--config="+stages,
		"--node-lease-duration-seconds=40",
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=127.0.0.1", "--cidr=10.244.0.0/16"); err != nil {
		return err
	}
	nodes := c.AdminClient().CoreV1().Nodes()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        NodeName,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		Labels:      map[string]string{"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux", "type": "kwok"},
	}}
	if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the fake node: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := nodes.Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return nodeReady(n) && len(n.Spec.Taints) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("fake node not Ready and untainted: %w\nkwok log:\n%s", err, c.logTail("kwok"))
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
