package controller

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/notify"
)

// notify sends a rollout event to the controller-wide receivers and the
// CV's own. It runs where the controller makes a durable status transition,
// so each event is sent once per rollout, also across restarts (a resumed
// rollout finishes once). The event carries the rollout's ID
// (status.rollout.id, "" for an event of no rollout), so a receiver can
// drop a delivery it already has (the notifier's retries can repeat one).
func (c *Controller) notify(ctx context.Context, cv *cvv1.ContainerVersion, rolloutID, kind, version, digest, from, message string) {
	if c.opts.Notifier == nil || len(cv.Spec.Notifications) == 0 && len(c.opts.DefaultNotifications) == 0 {
		return
	}
	event := notify.Event{
		Kind: kind, RolloutID: rolloutID, Namespace: cv.Namespace, Name: cv.Name, Image: cv.Spec.ImageRepo,
		Version: version, Digest: digest, From: from, Message: message, Time: c.clock.Now().UTC(),
	}
	if p := c.provenanceOf(digest); p != nil {
		event.Revision, event.Source = p.Revision, p.Source
	}
	for _, route := range c.opts.DefaultNotifications {
		if route.Wants(kind) {
			c.opts.Notifier.Enqueue(route.Receiver, event)
		}
	}
	for _, n := range cv.Spec.Notifications {
		if !(notify.Route{Events: n.Events}).Wants(kind) {
			continue
		}
		if receiver, ok := c.receiver(ctx, cv.Namespace, n); ok {
			c.opts.Notifier.Enqueue(receiver, event)
		}
	}
}

// receiver reads the URL (and HMAC key) from Secrets; neither is logged.
func (c *Controller) receiver(ctx context.Context, namespace string, n cvv1.NotificationSpec) (notify.Receiver, bool) {
	url, ok := c.secretValue(ctx, namespace, n.URLSecretRef)
	if !ok {
		klog.InfoS("Notification URL secret unavailable", "namespace", namespace, "secret", n.URLSecretRef.Name, "notification", n.Name)
		return notify.Receiver{}, false
	}
	r := notify.Receiver{Type: n.Type, URL: string(url)}
	if n.HMACSecretRef != nil {
		if key, ok := c.secretValue(ctx, namespace, *n.HMACSecretRef); ok {
			r.Secret = key
		}
	}
	if n.TokenSecretRef != nil {
		token, ok := c.secretValue(ctx, namespace, *n.TokenSecretRef)
		if !ok {
			klog.InfoS("Notification token secret unavailable", "namespace", namespace, "secret", n.TokenSecretRef.Name, "notification", n.Name)
			return notify.Receiver{}, false
		}
		r.Token = token
	}
	return r, true
}

func (c *Controller) secretValue(ctx context.Context, namespace string, ref cvv1.SecretKeyRef) ([]byte, bool) {
	secret, err := c.kube.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, false
	}
	value, ok := secret.Data[ref.Key]
	return value, ok && len(value) > 0
}
