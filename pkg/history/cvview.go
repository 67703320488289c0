package history

import (
	"context"
	"sort"

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
// workload history are left out; the result is newest first, each record
// once. It costs one read per ConfigMap.
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
