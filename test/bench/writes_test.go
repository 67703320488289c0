package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWritesByResourceCountsCvmanagersWritesPerRollout(t *testing.T) {
	before := `apiserver_request_total{code="200",group="apps",resource="deployments",subresource="",verb="PATCH"} 10
apiserver_request_total{code="200",group="cvmanager.dev",resource="containerversions",subresource="status",verb="PUT"} 4
apiserver_request_total{code="200",resource="configmaps",subresource="",verb="GET"} 100
`
	after := `apiserver_request_total{code="200",group="apps",resource="deployments",subresource="",verb="PATCH"} 30
apiserver_request_total{code="200",group="apps",resource="deployments",subresource="status",verb="PUT"} 50
apiserver_request_total{code="200",group="cvmanager.dev",resource="containerversions",subresource="status",verb="PUT"} 44
apiserver_request_total{code="409",group="cvmanager.dev",resource="containerversions",subresource="status",verb="PUT"} 2
apiserver_request_total{code="201",resource="configmaps",subresource="",verb="POST"} 20
apiserver_request_total{code="200",resource="configmaps",subresource="",verb="GET"} 300
`
	want := map[string]float64{
		"PATCH deployments": 1, "PUT containerversions/status": 2.1, "POST configmaps": 1,
		"history (POST+PUT configmaps)": 1,
	}
	if diff := cmp.Diff(want, writesByResource(before, after, nil, 20)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := formatWrites(map[string]float64{"PUT containerversions/status": 2.1}); got != "PUT containerversions/status 2.10 (budget ≤ 2: MISSED)" {
		t.Errorf("format: %q", got)
	}
}

func TestWritesByResourceLeavesOutTheBackground(t *testing.T) {
	before := `apiserver_request_total{code="200",group="cvmanager.dev",resource="containerversions",subresource="status",verb="PUT"} 100
`
	after := `apiserver_request_total{code="200",group="cvmanager.dev",resource="containerversions",subresource="status",verb="PUT"} 350
`
	// 50 writes a second in a steady interval of 10 s; a 1 s burst window
	// then holds 50 background writes beside the 10 rollouts' 200.
	rates := writeRates(before, `apiserver_request_total{code="200",group="cvmanager.dev",resource="containerversions",subresource="status",verb="PUT"} 600
`, 10*time.Second)
	got := writesByResource(before, after, scaled(rates, time.Second), 10)
	if got["PUT containerversions/status"] != 20 {
		t.Errorf("status writes per rollout = %v, want 20 (250 less 50 background, over 10)", got["PUT containerversions/status"])
	}
}
