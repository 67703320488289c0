package cli

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"cvmanager.dev/cvmanager/pkg/dashboard"
)

// TestCVGetWideShowsHeld: -o wide ends with a HELD column naming the
// version held back and, when it waits for spec.policy.minAge or a soak,
// the time it becomes eligible (status.heldUntil, in UTC); the default
// table keeps its columns and their order.
func TestCVGetWideShowsHeld(t *testing.T) {
	until := time.Date(2026, 12, 8, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	rows := []dashboard.Row{
		{Namespace: "shop", Type: "Deployment", Name: "web", CV: "web", Tag: "env-prod", Version: "v1", Status: "Success",
			Image: "r/web:v1", AvailableVersion: "v2", ReleaseCommand: "cvmanager release -n shop --cv web --version v2", HeldUntil: until},
		{Namespace: "shop", Type: "Deployment", Name: "api", CV: "api", Tag: "env-prod", Version: "v1", Status: "Success",
			Image: "r/api:v1", AvailableVersion: "v3", ReleaseCommand: "cvmanager release -n shop --cv api --version v3"},
		{Namespace: "shop", Type: "Deployment", Name: "db", CV: "db", Tag: "env-prod", Version: "v1", Status: "Success",
			Image: "r/db:v1", ReleaseCommand: "cvmanager release -n shop --cv db --version sha256:1", HeldUntil: until},
		{Namespace: "shop", Type: "Deployment", Name: "ui", CV: "ui", Tag: "env-prod", Version: "v1", Status: "Success", Image: "r/ui:v1"},
	}
	var out bytes.Buffer
	if err := printTable(&out, rows, true); err != nil {
		t.Fatal(err)
	}
	want := `NAMESPACE  WORKLOAD        CV   TAG       VERSION  PODS  STATUS   UPDATED  RUNNING   SIGNER  REVISION  GIT  HELD
shop       Deployment/web  web  env-prod  v1       0/0   Success  -        r/web:v1  -       -         -    v2 until 2026-12-08T08:30:00Z
shop       Deployment/api  api  env-prod  v1       0/0   Success  -        r/api:v1  -       -         -    v3
shop       Deployment/db   db   env-prod  v1       0/0   Success  -        r/db:v1   -       -         -    held until 2026-12-08T08:30:00Z
shop       Deployment/ui   ui   env-prod  v1       0/0   Success  -        r/ui:v1   -       -         -    -
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("cv get -o wide (-want +got):\n%s", diff)
	}
	out.Reset()
	if err := printTable(&out, rows, false); err != nil {
		t.Fatal(err)
	}
	want = `NAMESPACE  WORKLOAD        CV   TAG       VERSION  PODS  STATUS   UPDATED  RUNNING
shop       Deployment/web  web  env-prod  v1       0/0   Success  -        r/web:v1
shop       Deployment/api  api  env-prod  v1       0/0   Success  -        r/api:v1
shop       Deployment/db   db   env-prod  v1       0/0   Success  -        r/db:v1
shop       Deployment/ui   ui   env-prod  v1       0/0   Success  -        r/ui:v1
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("cv get (-want +got):\n%s", diff)
	}
}
