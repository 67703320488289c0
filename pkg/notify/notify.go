// Package notify sends rollout events to receivers: a generic JSON webhook
// signed with HMAC-SHA256, a Slack incoming webhook, or Grafana annotations
// (POST /api/annotations with a service-account token). Delivery is
// asynchronous with bounded retries, so a slow or dead receiver never holds
// up a rollout; when the queue is full, events are dropped and counted.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// Event kinds, as named in spec.notifications[].events.
const (
	Started    = "Started"
	Succeeded  = "Succeeded"
	Failed     = "Failed"
	RolledBack = "RolledBack"
	Blocked    = "Blocked"
	// Promoted is a rollout started by `cvmanager promote`: the target's tag
	// was moved to a version that succeeded elsewhere.
	Promoted = "Promoted"
)

// SignatureHeader carries "sha256=<hex HMAC of the body>", as receivers of
// GitHub-style webhooks expect; TimestampHeader lets them refuse replays.
const (
	SignatureHeader = "X-Cvmanager-Signature-256"
	TimestampHeader = "X-Cvmanager-Timestamp"
)

// Event is what a receiver gets.
type Event struct {
	Kind      string    `json:"event"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"containerVersion"`
	Image     string    `json:"image"`
	Version   string    `json:"version"`
	Digest    string    `json:"digest"`
	From      string    `json:"fromVersion,omitempty"`
	Message   string    `json:"message,omitempty"`
	Time      time.Time `json:"time"`
	// Revision and Source are the image's provenance
	// (org.opencontainers.image.revision and .source), when it carries
	// them and they were read: what commit the version was built from.
	Revision string `json:"revision,omitempty"`
	Source   string `json:"source,omitempty"`
	// RolloutID identifies the rollout the event belongs to (the CV's
	// status.rollout.id), empty for an event of no rollout (Blocked). The
	// controller sends each event of a rollout once, yet a receiver can
	// get one twice: delivery is retried when no 2xx answer came back,
	// also when only the answer was lost. A receiver drops an (event,
	// rolloutID) pair it already has.
	RolloutID string `json:"rolloutID,omitempty"`
}

// Receiver types, as named in spec.notifications[].type.
const (
	TypeWebhook = "Webhook"
	TypeSlack   = "Slack"
	// TypeGrafana posts an annotation to Grafana's HTTP API, so rollouts
	// show on the dashboards' graphs.
	TypeGrafana = "Grafana"
)

// Receiver is one destination, resolved from its Secrets.
type Receiver struct {
	Type   string // Webhook, Slack or Grafana
	URL    string
	Secret []byte // HMAC key for Webhook receivers; may be empty
	// Token is a Grafana service-account token, sent as a bearer token.
	Token []byte
}

// Route is a receiver with the event kinds it wants (empty: all of them).
type Route struct {
	Receiver Receiver
	Events   []string
}

// Wants reports whether the route takes events of kind.
func (r Route) Wants(kind string) bool {
	return len(r.Events) == 0 || slices.Contains(r.Events, kind)
}

// Kinds are all event kinds, in the order a rollout meets them.
var Kinds = []string{Started, Succeeded, Failed, RolledBack, Blocked, Promoted}

type delivery struct {
	receiver Receiver
	event    Event
}

// Notifier delivers events from a bounded queue with a few workers.
type Notifier struct {
	client   *http.Client
	queue    chan delivery
	attempts int
	backoff  time.Duration
	// Dropped counts events lost to a full queue (exported as a metric).
	Dropped func()
}

// New creates a notifier; Run starts its workers.
func New() *Notifier {
	return &Notifier{
		client:   &http.Client{Timeout: 10 * time.Second},
		queue:    make(chan delivery, 1024),
		attempts: 4,
		backoff:  500 * time.Millisecond,
		Dropped:  func() {},
	}
}

// Enqueue schedules delivery and never blocks.
func (n *Notifier) Enqueue(r Receiver, e Event) {
	select {
	case n.queue <- delivery{r, e}:
	default:
		n.Dropped()
		klog.InfoS("Notification queue full; event dropped", "cv", e.Namespace+"/"+e.Name, "event", e.Kind)
	}
}

// Run delivers until ctx is done.
func (n *Notifier) Run(ctx context.Context, workers int) {
	for i := 0; i < workers; i++ {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-n.queue:
					n.deliver(ctx, d)
				}
			}
		}()
	}
}

// deliver tries a few times with doubling back-off. Receiver URLs embed
// credentials, so they are never logged.
func (n *Notifier) deliver(ctx context.Context, d delivery) {
	body, contentType, err := encode(d)
	if err != nil {
		return
	}
	wait := n.backoff
	for attempt := 1; attempt <= n.attempts; attempt++ {
		err = n.post(ctx, d.receiver, body, contentType)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
			wait *= 2
		}
	}
	klog.InfoS("Notification not delivered", "cv", d.event.Namespace+"/"+d.event.Name, "event", d.event.Kind, "type", d.receiver.Type, "err", redact(err))
}

func (n *Notifier) post(ctx context.Context, r Receiver, body []byte, contentType string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint(r), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	if r.Type == TypeGrafana && len(r.Token) > 0 {
		req.Header.Set("Authorization", "Bearer "+string(r.Token))
	}
	if r.Type == TypeWebhook && len(r.Secret) > 0 {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(SignatureHeader, "sha256="+Sign(r.Secret, ts, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// Sign is the HMAC-SHA256 of "<timestamp>.<body>": binding the timestamp
// into the signature makes a replayed body with a new timestamp invalid.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// endpoint is where a receiver is posted to: a Grafana receiver's URL may
// be the server's base URL, to which the annotations path is added.
func endpoint(r Receiver) string {
	if r.Type != TypeGrafana || strings.HasSuffix(strings.TrimSuffix(r.URL, "/"), GrafanaAnnotationsPath) {
		return r.URL
	}
	return strings.TrimSuffix(r.URL, "/") + GrafanaAnnotationsPath
}

// GrafanaAnnotationsPath is Grafana's HTTP API for annotations.
const GrafanaAnnotationsPath = "/api/annotations"

// GrafanaAnnotation is the body of POST /api/annotations: an organisation
// annotation (no dashboard), found by its tags; Time is in epoch
// milliseconds as Grafana expects.
type GrafanaAnnotation struct {
	Time int64    `json:"time"`
	Tags []string `json:"tags"`
	Text string   `json:"text"`
}

// grafanaAnnotation tags the annotation so a dashboard can select a CV's
// rollouts ("cvmanager", the event, "namespace:…", "cv:…", "version:…").
func grafanaAnnotation(e Event) GrafanaAnnotation {
	text := fmt.Sprintf("%s %s/%s: %s %s", e.Kind, e.Namespace, e.Name, e.Image, e.Version)
	if e.From != "" {
		text += " (from " + e.From + ")"
	}
	if e.Message != "" {
		text += ": " + e.Message
	}
	text += builtFrom(e, func(s string) string { return s })
	return GrafanaAnnotation{
		Time: e.Time.UnixMilli(),
		Tags: []string{"cvmanager", e.Kind, "namespace:" + e.Namespace, "cv:" + e.Name, "version:" + e.Version},
		Text: text,
	}
}

func encode(d delivery) ([]byte, string, error) {
	switch d.receiver.Type {
	case TypeSlack:
		body, err := json.Marshal(map[string]string{"text": slackText(d.event)})
		return body, "application/json", err
	case TypeGrafana:
		body, err := json.Marshal(grafanaAnnotation(d.event))
		return body, "application/json", err
	}
	body, err := json.Marshal(d.event)
	return body, "application/json", err
}

func slackText(e Event) string {
	icon := map[string]string{Started: ":rocket:", Succeeded: ":white_check_mark:", Failed: ":x:", RolledBack: ":rewind:", Blocked: ":no_entry:"}[e.Kind]
	text := fmt.Sprintf("%s *%s* %s/%s: %s `%s`", icon, e.Kind, e.Namespace, e.Name, e.Image, e.Version)
	if e.Message != "" {
		text += " — " + e.Message
	}
	return text + builtFrom(e, slackEscape)
}

// builtFrom is the " (built from <revision> of <source>)" tail of a
// message, empty when the image names neither; escape adapts the values
// to the receiver's markup.
func builtFrom(e Event, escape func(string) string) string {
	switch {
	case e.Revision != "" && e.Source != "":
		return " (built from " + escape(e.Revision) + " of " + escape(e.Source) + ")"
	case e.Revision != "":
		return " (built from " + escape(e.Revision) + ")"
	case e.Source != "":
		return " (built from " + escape(e.Source) + ")"
	}
	return ""
}

// slackEscape escapes the three characters Slack's mrkdwn treats as markup,
// so an image label cannot forge a link or a mention.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// redact drops the URL (which may hold a token) from transport errors.
func redact(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err.Error()
	}
	return err.Error()
}
