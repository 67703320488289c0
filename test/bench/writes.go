package main

import (
	"bufio"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
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
// less the background (what the whole population writes anyway in that
// time, e.g. lastPolled refreshes), divided by n rollouts. Only the
// resources cvmanager writes are kept; the kube-controller-manager's own
// writes go to other resources (replicasets, pods, deployments/status).
func writesByResource(before, after string, background map[string]float64, n int) map[string]float64 {
	if n <= 0 {
		return nil
	}
	delta := writesBetween(before, after)
	out := map[string]float64{}
	for key, v := range delta {
		if v -= background[key]; v > 0 {
			out[key] = v / float64(n)
		}
	}
	out["history (POST+PUT configmaps)"] = out["POST configmaps"] + out["PUT configmaps"]
	return out
}

// writesBetween is the growth of each "VERB resource" write count between
// two scrapes.
func writesBetween(before, after string) map[string]float64 {
	delta := writeCounts(after)
	for key, v := range writeCounts(before) {
		delta[key] -= v
	}
	return delta
}

// writeRates is writesBetween per second of a window.
func writeRates(before, after string, window time.Duration) map[string]float64 {
	rates := writesBetween(before, after)
	for key := range rates {
		rates[key] /= window.Seconds()
	}
	return rates
}

// scaled is rates multiplied over a window: the background writes a
// steady population makes in that time.
func scaled(rates map[string]float64, window time.Duration) map[string]float64 {
	out := make(map[string]float64, len(rates))
	for key, r := range rates {
		out[key] = r * window.Seconds()
	}
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

// conflicts is how many writes to resource/subresource the apiserver
// answered 409 between two scrapes.
func conflicts(before, after, resource, subresource string) float64 {
	count := func(body string) float64 {
		n := 0.0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "apiserver_request_total{") && label(line, "code") == "409" &&
				label(line, "resource") == resource && label(line, "subresource") == subresource && isWrite(label(line, "verb")) {
				fields := strings.Fields(line)
				v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
				n += v
			}
		}
		return n
	}
	return count(after) - count(before)
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

// formatBackground names the background left out, when there was any.
func formatBackground(background map[string]float64) string {
	total := 0.0
	for _, v := range background {
		total += v
	}
	if total < 0.5 {
		return ""
	}
	return fmt.Sprintf(" (background left out: %.0f writes)", total)
}
