package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestControllerWideNotificationFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hook := write("hook", "https://hooks.example/abc?token=secret-token\n")
	hmac := write("hmac", "hmac-key\n")
	slack := write("slack", "https://hooks.slack.example/T0/B0/xyz")
	notURL := write("not-url", "secret-token")
	empty := write("empty", "\n")

	flags := notifyFlags{webhookURLFile: hook, webhookHMACFile: hmac, slackURLFile: slack, events: []string{"Failed", "RolledBack"}}
	routes, err := flags.routes()
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 2 || routes[0].Receiver.Type != "Webhook" || routes[0].Receiver.URL != "https://hooks.example/abc?token=secret-token" ||
		string(routes[0].Receiver.Secret) != "hmac-key" || routes[1].Receiver.Type != "Slack" || routes[1].Receiver.Secret != nil {
		t.Fatalf("routes: %+v", routes)
	}
	for _, r := range routes {
		if r.Wants("Succeeded") || !r.Wants("Failed") || !r.Wants("RolledBack") {
			t.Errorf("%s route ignores --notify-events: %v", r.Receiver.Type, r.Events)
		}
	}
	if routes, err := (&notifyFlags{}).routes(); err != nil || routes != nil {
		t.Errorf("no flags: %v, %v", routes, err)
	}

	bad := []struct {
		flags notifyFlags
		says  string
	}{
		{notifyFlags{webhookURLFile: hook, events: []string{"Deployed"}}, `unknown event "Deployed"`},
		{notifyFlags{webhookHMACFile: hmac}, "needs --notify-webhook-url-file"},
		{notifyFlags{webhookURLFile: filepath.Join(dir, "absent")}, "--notify-webhook-url-file: open"},
		{notifyFlags{slackURLFile: notURL}, "does not hold an http(s) URL"},
		{notifyFlags{slackURLFile: empty}, "is empty"},
		{notifyFlags{webhookURLFile: hook, webhookHMACFile: empty}, "--notify-webhook-hmac-file"},
		{notifyFlags{grafanaURLFile: slack}, "go together"},
		{notifyFlags{grafanaTokenFile: hmac}, "go together"},
		{notifyFlags{grafanaURLFile: notURL, grafanaTokenFile: hmac}, "does not hold an http(s) URL"},
		{notifyFlags{grafanaURLFile: slack, grafanaTokenFile: empty}, "--notify-grafana-token-file"},
	}
	for _, b := range bad {
		_, err := b.flags.routes()
		if err == nil || !strings.Contains(err.Error(), b.says) || strings.Contains(err.Error(), "secret-token") {
			t.Errorf("%+v: %v, want an error saying %q without the file's content", b.flags, err, b.says)
		}
	}
}

func TestGrafanaNotificationFlags(t *testing.T) {
	dir := t.TempDir()
	url, token := filepath.Join(dir, "url"), filepath.Join(dir, "token")
	if err := os.WriteFile(url, []byte("https://grafana.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("glsa_token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	routes, err := (&notifyFlags{grafanaURLFile: url, grafanaTokenFile: token}).routes()
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 1 || routes[0].Receiver.Type != "Grafana" || routes[0].Receiver.URL != "https://grafana.example" || string(routes[0].Receiver.Token) != "glsa_token" {
		t.Errorf("routes: %+v", routes)
	}
}
