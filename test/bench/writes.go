package main

import (
	"bufio"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// writeBudget is the write budget of one rollout (docs/architecture.md): at
// most one workload patch, two CV status writes, one history write, and no
// write to the CV itself (its metadata belongs to its users).
var writeBudget = map[string]float64{
	"PATCH deployments":             1,
	"PUT containerversions/status":  2,
	"PUT containerversions":         0,
	"PATCH containerversions":       0,
	"history (POST+PUT configmaps)": 1,
}

// writesByResource is the apiserver's write requests between two /metrics
// scrapes (apiserver_request_total), per "VERB resource[/subresource]",
// divided by n rollouts. Only the resources cvmanager writes are kept; the
// kube-controller-manager's own writes go to other resources (replicasets,
// pods, deployments/status).
func writesByResource(before, after string, n int) map[string]float64 {
	if n <= 0 {
		return nil
	}
	delta := map[string]float64{}
	for key, v := range writeCounts(after) {
		delta[key] = v
	}
	for key, v := range writeCounts(before) {
		delta[key] -= v
	}
	out := map[string]float64{}
	for key, v := range delta {
		if v > 0 {
			out[key] = v / float64(n)
		}
	}
	out["history (POST+PUT configmaps)"] = out["POST configmaps"] + out["PUT configmaps"]
	return out
}

// cvmanagerResources are the resources whose writes are cvmanager's.
var cvmanagerResources = map[string]bool{
	"deployments": true, "containerversions": true, "containerversions/status": true, "configmaps": true,
	"containerversionrequests": true, "events": true, "localsubjectaccessreviews": true, "jobs": true, "services": true,
}

// writeCounts sums apiserver_request_total's write verbs per "VERB resource".
func writeCounts(body string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		verb, resource := label(line, "verb"), label(line, "resource")
		if sub := label(line, "subresource"); sub != "" {
			resource += "/" + sub
		}
		if !isWrite(verb) || !cvmanagerResources[resource] {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			out[verb+" "+resource] += v
		}
	}
	return out
}

func isWrite(verb string) bool {
	return verb == "POST" || verb == "PUT" || verb == "PATCH" || verb == "DELETE"
}

// label reads one label's value from a Prometheus text line.
func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	value, _, _ := strings.Cut(rest, `"`)
	return value
}

// formatWrites renders writes per rollout, each against its budget where
// one is set.
func formatWrites(w map[string]float64) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		part := fmt.Sprintf("%s %.2f", k, w[k])
		if limit, ok := writeBudget[k]; ok {
			verdict := "met"
			if w[k] > limit+0.005 {
				verdict = "MISSED"
			}
			part += fmt.Sprintf(" (budget ≤ %.0f: %s)", limit, verdict)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}
