package e2e

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/notify"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// receiver is a webhook endpoint that verifies signatures like a user's would.
type receiver struct {
	mu     sync.Mutex
	secret []byte
	events []notify.Event
	bad    int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	want := "sha256=" + notify.Sign(r.secret, req.Header.Get(notify.TimestampHeader), body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !hmac.Equal([]byte(want), []byte(req.Header.Get(notify.SignatureHeader))) {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e notify.Event
	_ = json.Unmarshal(body, &e)
	r.events = append(r.events, e)
}

func (r *receiver) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Kind+":"+e.Version)
	}
	return out
}

// sources lists "cv:kind:version", sorted.
func (r *receiver) sources() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Name+":"+e.Kind+":"+e.Version)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// TestNotificationsSignedAndSentOnce: a rollout sends Started and Succeeded
// to the CV's webhook, HMAC-signed; a controller-wide receiver that wants
// Succeeded only gets it from every CV, also one without receivers of its
// own; a controller restart sends nothing again.
func TestNotificationsSignedAndSentOnce(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	recv := &receiver{secret: []byte("hmac-key-0123456789")}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	platform := &receiver{secret: []byte("platform-key-0123456789")}
	platformSrv := httptest.NewServer(platform)
	defer platformSrv.Close()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: "hook"},
		Data: map[string][]byte{"url": []byte(srv.URL + "/hook?token=do-not-log"), "hmac": recv.secret}}
	_, err := e.Kube.CoreV1().Secrets(e.NS).Create(e.Ctx, secret, metav1.CreateOptions{})
	e2eenv.Must(t, err)

	repo := reg.Repo("team/notify")
	d1 := reg.MustPush(t, "team/notify", "v1", "env-prod")
	for _, name := range []string{"notify", "plain"} {
		_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, name, name, repo+":old", 1), metav1.CreateOptions{})
		e2eenv.Must(t, err)
	}
	notifier := notify.New()
	ctx, cancel := context.WithCancel(e.Ctx)
	defer cancel()
	notifier.Run(ctx, 2)
	withNotifier := func(o *controller.Options) {
		o.Notifier = notifier
		o.DefaultNotifications = []notify.Route{{
			Receiver: notify.Receiver{Type: "Webhook", URL: platformSrv.URL, Secret: platform.secret}, Events: []string{notify.Succeeded},
		}}
	}
	stop := e.StartController(reg.Resolver(t), withNotifier)
	e.CreateCV(gen.NewCV(e.NS, "notify", repo, func(s *cvv1.ContainerVersionSpec) {
		s.Notifications = []cvv1.NotificationSpec{{Name: "ci", Type: "Webhook",
			URLSecretRef: cvv1.SecretKeyRef{Name: "hook", Key: "url"}, HMACSecretRef: &cvv1.SecretKeyRef{Name: "hook", Key: "hmac"}}}
	}))
	e.CreateCV(gen.NewCV(e.NS, "plain", repo))
	e.WaitStatus("notify", cvv1.StatusSuccess, d1, 60*time.Second)
	e.WaitStatus("plain", cvv1.StatusSuccess, d1, 60*time.Second)
	e.Eventually(10*time.Second, "the CV's two notifications and the platform's two", func() (bool, error) {
		return len(recv.kinds()) == 2 && len(platform.kinds()) == 2, nil
	})

	// The restarted controller syncs both CVs (two polls of their shared
	// ref seen at the registry), then rolls out v2: its notifications
	// arrive, and v1's were not sent again in between.
	stop()
	e.StartController(reg.Resolver(t), withNotifier)
	waitPolls(e, reg, reg.Count("HEAD", "manifests"), 2, 30*time.Second)
	d2 := reg.MustPush(t, "team/notify", "v2", "env-prod")
	e.WaitStatus("notify", cvv1.StatusSuccess, d2, 60*time.Second)
	e.WaitStatus("plain", cvv1.StatusSuccess, d2, 60*time.Second)
	e.Eventually(10*time.Second, "v2's notifications", func() (bool, error) {
		return len(recv.kinds()) >= 4 && len(platform.kinds()) >= 4, fmt.Errorf("%v, %v", recv.kinds(), platform.kinds())
	})
	if got := strings.Join(recv.kinds(), ","); got != "Started:v1,Succeeded:v1,Started:v2,Succeeded:v2" {
		t.Errorf("notifications = %s, want Started and Succeeded of v1, then of v2, each exactly once", got)
	}
	if got := platform.sources(); got != "notify:Succeeded:v1,notify:Succeeded:v2,plain:Succeeded:v1,plain:Succeeded:v2" {
		t.Errorf("controller-wide notifications = %s, want one Succeeded of each version from each CV", got)
	}
	if recv.bad != 0 || platform.bad != 0 {
		t.Errorf("%d and %d notifications with a bad signature", recv.bad, platform.bad)
	}
	if reasons := e.EventReasons("notify"); len(reasons) == 0 {
		t.Error("no events")
	}
}
