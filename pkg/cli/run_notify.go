package cli

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"cvmanager.dev/cvmanager/pkg/notify"
)

// notifyFlags are run's controller-wide notification receivers. URLs and
// keys come from files (mounted Secrets): receiver URLs embed credentials,
// and flags show up in process listings and pod specs.
type notifyFlags struct {
	webhookURLFile, webhookHMACFile, slackURLFile string
	grafanaURLFile, grafanaTokenFile              string
	events                                        []string
}

func (n *notifyFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&n.webhookURLFile, "notify-webhook-url-file", "", "file holding a webhook URL that receives the rollout events of every CV")
	fs.StringVar(&n.webhookHMACFile, "notify-webhook-hmac-file", "", "file holding the key that signs those webhook bodies (HMAC-SHA256)")
	fs.StringVar(&n.slackURLFile, "notify-slack-url-file", "", "file holding a Slack incoming-webhook URL that receives the rollout events of every CV")
	fs.StringVar(&n.grafanaURLFile, "notify-grafana-url-file", "", "file holding a Grafana base URL that receives every CV's rollout events as annotations")
	fs.StringVar(&n.grafanaTokenFile, "notify-grafana-token-file", "", "file holding the Grafana service-account token (annotations:write) for --notify-grafana-url-file")
	fs.StringSliceVar(&n.events, "notify-events", nil,
		"events sent to those receivers (default all): "+strings.Join(notify.Kinds, ","))
}

// routes reads the receivers named by the flags.
func (n *notifyFlags) routes() ([]notify.Route, error) {
	for _, e := range n.events {
		if !slices.Contains(notify.Kinds, e) {
			return nil, fmt.Errorf("--notify-events: unknown event %q (known: %s)", e, strings.Join(notify.Kinds, ", "))
		}
	}
	if n.webhookHMACFile != "" && n.webhookURLFile == "" {
		return nil, fmt.Errorf("--notify-webhook-hmac-file needs --notify-webhook-url-file")
	}
	var routes []notify.Route
	if n.webhookURLFile != "" {
		r, err := n.route("Webhook", "--notify-webhook-url-file", n.webhookURLFile)
		if err != nil {
			return nil, err
		}
		if n.webhookHMACFile != "" {
			key, err := readSecretFile("--notify-webhook-hmac-file", n.webhookHMACFile)
			if err != nil {
				return nil, err
			}
			r.Receiver.Secret = []byte(key)
		}
		routes = append(routes, r)
	}
	if n.slackURLFile != "" {
		r, err := n.route("Slack", "--notify-slack-url-file", n.slackURLFile)
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	if n.grafanaURLFile != "" || n.grafanaTokenFile != "" {
		r, err := n.grafanaRoute()
		if err != nil {
			return nil, err
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// grafanaRoute reads the Grafana receiver: both files are needed.
func (n *notifyFlags) grafanaRoute() (notify.Route, error) {
	if n.grafanaURLFile == "" || n.grafanaTokenFile == "" {
		return notify.Route{}, fmt.Errorf("--notify-grafana-url-file and --notify-grafana-token-file go together")
	}
	r, err := n.route(notify.TypeGrafana, "--notify-grafana-url-file", n.grafanaURLFile)
	if err != nil {
		return notify.Route{}, err
	}
	token, err := readSecretFile("--notify-grafana-token-file", n.grafanaTokenFile)
	if err != nil {
		return notify.Route{}, err
	}
	r.Receiver.Token = []byte(token)
	return r, nil
}

func (n *notifyFlags) route(kind, flag, file string) (notify.Route, error) {
	url, err := readSecretFile(flag, file)
	if err != nil {
		return notify.Route{}, err
	}
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return notify.Route{}, fmt.Errorf("%s: %s does not hold an http(s) URL", flag, file) // the URL itself is a secret
	}
	return notify.Route{Receiver: notify.Receiver{Type: kind, URL: url}, Events: n.events}, nil
}

// readSecretFile reads a one-line secret; the error never quotes the content.
func readSecretFile(flag, file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	value := strings.TrimSpace(string(data))
	if value == "" {
		return "", fmt.Errorf("%s: %s is empty", flag, file)
	}
	return value, nil
}
