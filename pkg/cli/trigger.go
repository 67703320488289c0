package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/registry/poller"
	"cvmanager.dev/cvmanager/pkg/trigger"
)

// triggerOptions are the flags of `cvmanager trigger`.
type triggerOptions struct {
	url, keyFile, caFile, namespace, name string
	// image and tag name the call as the xcnt update manager's does: every
	// CV following image:tag is polled.
	image, tag string
	// explicitNamespace is -n as given, before the kubeconfig's default.
	explicitNamespace string
	wait              bool
	timeout           time.Duration
}

// newTriggerCommand calls POST /v1/trigger for CI, and with --wait follows
// the CV's status through the Kubernetes API until the rollout ends.
func newTriggerCommand(kube *KubeFlags) *cobra.Command {
	o := &triggerOptions{}
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Ask the controller to poll a ContainerVersion now (CI), optionally waiting for the rollout",
		Long: `Ask the controller to poll now. Name one CV (--cv, -n) or, as the xcnt update
manager's update call does, an image and tag (--image repo --tag t): every CV
following that image and tag is polled.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), cmd.OutOrStdout(), kube) },
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "controller base URL, e.g. http://cvmanager.cvmanager-system:8081 (required)")
	f.StringVar(&o.keyFile, "key-file", "", "file holding the API key (default: $CVMANAGER_TRIGGER_KEY)")
	f.StringVar(&o.caFile, "ca-file", "", "PEM CA that signed the controller's certificate, for an https --url with a private CA")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the ContainerVersion (default: the kubeconfig's)")
	f.StringVar(&o.name, "cv", "", "name of the ContainerVersion (or --image and --tag)")
	f.StringVar(&o.image, "image", "", "poll every ContainerVersion following this image repository (with --tag)")
	f.StringVar(&o.tag, "tag", "", "the tag followed, with --image")
	f.BoolVar(&o.wait, "wait", false, "wait for the rollout to end; exit non-zero when it fails")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long --wait waits")
	_ = cmd.MarkFlagRequired("url")
	cmd.MarkFlagsMutuallyExclusive("cv", "image")
	cmd.MarkFlagsRequiredTogether("image", "tag")
	cmd.MarkFlagsOneRequired("cv", "image")
	return cmd
}

func (o *triggerOptions) run(ctx context.Context, out io.Writer, kube *KubeFlags) error {
	o.explicitNamespace = o.namespace
	if o.namespace == "" {
		o.namespace = kube.Namespace()
	}
	key, err := o.key()
	if err != nil {
		return err
	}
	var before []cvv1.ContainerVersion
	if o.wait {
		if before, err = o.followed(ctx, kube); err != nil {
			return err
		}
	}
	triggered, err := o.post(ctx, key)
	if err != nil {
		return err
	}
	for _, t := range triggered {
		fmt.Fprintf(out, "triggered %s/%s\n", t.Namespace, t.Name)
	}
	if !o.wait {
		return nil
	}
	return o.waitAll(ctx, out, kube, before, triggered)
}

// request is the body sent: one CV, or the xcnt-style {image, tag}.
func (o *triggerOptions) request() trigger.Request {
	if o.image != "" {
		return trigger.Request{Image: o.image, Tag: o.tag}
	}
	return trigger.Request{Namespace: o.namespace, Name: o.name}
}

// followed reads, before the call, the CVs a --wait follows: the named
// one, or those following --image:--tag (in -n's namespace when given,
// else in all), so a rollout the trigger starts is told from an old one.
func (o *triggerOptions) followed(ctx context.Context, kube *KubeFlags) ([]cvv1.ContainerVersion, error) {
	if o.image == "" {
		cv, err := o.getCV(ctx, kube, o.namespace, o.name)
		if err != nil {
			return nil, err
		}
		return []cvv1.ContainerVersion{*cv}, nil
	}
	_, cvClient, err := clients(kube)
	if err != nil {
		return nil, err
	}
	list, err := cvClient.CvmanagerV1alpha1().ContainerVersions(o.explicitNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing ContainerVersions: %w", err)
	}
	var out []cvv1.ContainerVersion
	for _, cv := range list.Items {
		if cv.Spec.ImageRepo == o.image && cv.Spec.Tag == o.tag {
			out = append(out, cv)
		}
	}
	return out, nil
}

// waitAll follows every triggered CV read before the call, in turn, and
// fails when any rollout did. A CV not read before (outside -n) cannot be
// told apart from an earlier rollout, so it is named and not followed.
func (o *triggerOptions) waitAll(ctx context.Context, out io.Writer, kube *KubeFlags, before []cvv1.ContainerVersion, triggered []trigger.Triggered) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var failed []error
	for _, t := range triggered {
		i := slices.IndexFunc(before, func(cv cvv1.ContainerVersion) bool { return cv.Namespace == t.Namespace && cv.Name == t.Name })
		if i < 0 {
			fmt.Fprintf(out, "not following %s/%s (outside -n %s)\n", t.Namespace, t.Name, o.explicitNamespace)
			continue
		}
		if err := o.waitForRollout(ctx, out, kube, t.Namespace, t.Name, &before[i]); err != nil {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

func (o *triggerOptions) key() (string, error) {
	if o.keyFile == "" {
		if k := os.Getenv("CVMANAGER_TRIGGER_KEY"); k != "" {
			return k, nil
		}
		return "", fmt.Errorf("no API key: pass --key-file or set CVMANAGER_TRIGGER_KEY")
	}
	data, err := os.ReadFile(o.keyFile)
	if err != nil {
		return "", fmt.Errorf("--key-file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// post sends the call and returns the CVs the controller scheduled.
func (o *triggerOptions) post(ctx context.Context, key string) ([]trigger.Triggered, error) {
	body, _ := json.Marshal(o.request())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(o.url, "/")+"/v1/trigger", strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	client, err := o.httpClient()
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the controller at %s: %w", o.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("trigger of %s refused: %s: %s", o.target(), resp.Status, strings.TrimSpace(string(msg)))
	}
	var answer struct {
		Triggered []trigger.Triggered `json:"triggered"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return nil, fmt.Errorf("reading the controller's answer: %w", err)
	}
	return answer.Triggered, nil
}

// target names what was asked for, in messages.
func (o *triggerOptions) target() string {
	if o.image != "" {
		return o.image + ":" + o.tag
	}
	return o.namespace + "/" + o.name
}

func (o *triggerOptions) httpClient() (*http.Client, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	if o.caFile == "" {
		return client, nil
	}
	pool, err := poller.CertPool("--ca-file", o.caFile)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	client.Transport = transport
	return client, nil
}

func (o *triggerOptions) getCV(ctx context.Context, kube *KubeFlags, namespace, name string) (*cvv1.ContainerVersion, error) {
	_, cvClient, err := clients(kube)
	if err != nil {
		return nil, err
	}
	cv, err := cvClient.CvmanagerV1alpha1().ContainerVersions(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("ContainerVersion %s/%s: %w", namespace, name, err)
	}
	return cv, nil
}

// waitForRollout returns when a rollout that started after the trigger has
// ended, or when none started within quietPeriod (the tag had not moved).
func (o *triggerOptions) waitForRollout(ctx context.Context, out io.Writer, kube *KubeFlags, namespace, name string, before *cvv1.ContainerVersion) error {
	const quietPeriod = 15 * time.Second
	started := time.Now()
	for {
		cv, err := o.getCV(ctx, kube, namespace, name)
		if err != nil {
			return err
		}
		changed := rolledOutSince(before, cv)
		switch {
		case cv.Status.Rollout == nil && changed && cv.Status.CurrStatus == cvv1.StatusFailed:
			return fmt.Errorf("rollout of %s/%s to %s failed", namespace, name, cv.Status.CurrVersion)
		case cv.Status.Rollout == nil && changed && cv.Status.CurrStatus == cvv1.StatusSuccess:
			_, err := fmt.Fprintf(out, "%s/%s runs %s (%s)\n", namespace, name, cv.Status.CurrVersion, cv.Status.CurrDigest)
			return err
		case cv.Status.Rollout == nil && !changed && time.Since(started) > quietPeriod:
			_, err := fmt.Fprintf(out, "no new version: %s/%s stays on %s\n", namespace, name, cv.Status.CurrVersion)
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s/%s: %w", namespace, name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// rolledOutSince tells whether a rollout happened between two reads of a
// CV. The digest is the main signal: currStatusTime has one-second
// resolution, too coarse for rollouts that finish within the second.
func rolledOutSince(before, now *cvv1.ContainerVersion) bool {
	if now.Status.CurrDigest != before.Status.CurrDigest {
		return true
	}
	t0, t1 := before.Status.CurrStatusTime, now.Status.CurrStatusTime
	return t1 != nil && (t0 == nil || t1.After(t0.Time))
}
