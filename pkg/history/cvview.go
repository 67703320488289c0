package history

import (
	"context"
	"sort"
	"strings"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Lister reads one history ConfigMap; Store implements it.
type Lister interface {
	List(ctx context.Context, namespace, configMapName string) ([]Record, error)
}

// CVHistory is the history of a CV across the ConfigMaps that hold it: the
// CV's own history (ConfigMapName: promotions, and every rollout recorded by
// versions that wrote there) and the histories of the workloads it selects,
// where rollouts are recorded now. Records another CV wrote into a shared
// workload history are left out, and the per-workload records of one
// rollout are shown as one record naming all its workloads, as the CV's
// history always did. The result is newest first; it costs one read per
// ConfigMap.
func CVHistory(ctx context.Context, l Lister, cv *cvv1.ContainerVersion, workloadNames []string) ([]Record, error) {
	own := ConfigMapName(cv)
	names := []string{own}
	seen := map[string]bool{own: true}
	for _, w := range workloadNames {
		if name := WorkloadConfigMapName(w); !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	var out []Record
	ids := map[string]bool{}
	for _, name := range names {
		records, err := l.List(ctx, cv.Namespace, name)
		if err != nil {
			return nil, err
		}
		for _, rec := range records {
			if ids[rec.ID] || !belongsTo(rec, cv.Name, name == own) {
				continue
			}
			ids[rec.ID] = true
			out = append(out, rec)
		}
	}
	out = groupRollouts(out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

// belongsTo says whether rec is cvName's: it names the CV, or it names none
// (written before records carried the CV) and sits in the CV's own history.
func belongsTo(rec Record, cvName string, ownHistory bool) bool {
	if rec.CV != "" {
		return rec.CV == cvName
	}
	return ownHistory
}

// groupRollouts folds the per-workload records sharing a Rollout into one
// record with the rollout's ID, the workloads as a sorted comma list and
// the kind when all share one. The latest time stands for the rollout.
func groupRollouts(records []Record) []Record {
	var out []Record
	at := map[string]int{}
	for _, rec := range records {
		// A record written for the whole rollout (no workload) carries the
		// rollout's ID itself: it meets its per-workload copies.
		key := rec.Rollout
		if key == "" {
			key = rec.ID
		}
		i, ok := at[key]
		if !ok {
			at[key] = len(out)
			rec.ID = key
			out = append(out, rec)
			continue
		}
		g := &out[i]
		wasEmpty := g.Workload == ""
		g.Workload = joinSorted(g.Workload, rec.Workload)
		switch {
		case rec.Workload == "":
		case wasEmpty:
			g.Kind = rec.Kind
		case g.Kind != rec.Kind:
			g.Kind = ""
		}
		if rec.Time.After(g.Time) {
			g.Time = rec.Time
		}
	}
	return out
}

// joinSorted adds the workload keys of more to the comma list, each once,
// sorted: a grouped record may meet a copy of itself (an imported history).
func joinSorted(list, more string) string {
	seen := map[string]bool{}
	var keys []string
	for _, k := range append(strings.Split(list, ","), strings.Split(more, ",")...) {
		if k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}
