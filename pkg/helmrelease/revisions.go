package helmrelease

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"

	"cvmanager.dev/cvmanager/pkg/state"
)

// ownChart is cvmanager's own chart: its release is never exported, so an
// import does not install a second controller beside the new cluster's.
const ownChart = "cvmanager"

// revisionsKey holds, in an exported release, every revision Helm keeps
// (its stored records, oldest first), so `helm history` and `helm rollback`
// work after an import.
const revisionsKey = "revisions"

// history is every stored revision of a release, oldest first.
func history(cfg *action.Configuration, name string) ([]*release.Release, error) {
	revs, err := action.NewHistory(cfg).Run(name)
	if err != nil {
		return nil, fmt.Errorf("Helm history of %s: %w", name, err)
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i].Version < revs[j].Version })
	return revs, nil
}

// withRevisions adds the release's stored revisions to its export.
func withRevisions(w state.Workload, revs []*release.Release) error {
	data, err := json.Marshal(revs)
	if err != nil {
		return err
	}
	var list []any
	if err := json.Unmarshal(data, &list); err != nil {
		return err
	}
	w.Object[revisionsKey] = list
	return nil
}

// revisionsOf reads the exported revisions back (none for an export made
// before they were kept).
func revisionsOf(w state.Workload) ([]*release.Release, error) {
	raw, ok := w.Object[revisionsKey]
	if !ok {
		return nil, nil
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var revs []*release.Release
	if err := json.Unmarshal(data, &revs); err != nil {
		return nil, fmt.Errorf("exported Helm release %s/%s: revisions: %w", w.Namespace, w.Name, err)
	}
	return revs, nil
}

// restoreHistory writes every revision before the last into Helm's
// storage as it was (the one before last as deployed, for the upgrade to
// supersede), then upgrades to the last revision's chart and values: the
// cluster gets the last revision's objects only, never an older one's, and
// Helm numbers it as exported.
func (s *Store) restoreHistory(ctx context.Context, cfg *action.Configuration, w state.Workload, revs []*release.Release) (*release.Release, error) {
	for i, r := range revs[:len(revs)-1] {
		r.Namespace, r.Name = w.Namespace, w.Name
		r.Info.Status = release.StatusSuperseded
		if i == len(revs)-2 {
			r.Info.Status = release.StatusDeployed
		}
		if err := cfg.Releases.Create(r); err != nil {
			return nil, fmt.Errorf("writing revision %d: %w", r.Version, err)
		}
	}
	last := revs[len(revs)-1]
	up := action.NewUpgrade(cfg)
	up.Namespace = w.Namespace
	up.Description = fmt.Sprintf("restored by cvmanager state import (exported revision %d)", last.Version)
	return up.RunWithContext(ctx, w.Name, last.Chart, last.Config)
}

// compareRelease says how an existing release relates to the export: its
// deployed chart and values against the exported ones.
func compareRelease(existing *release.Release, w state.Workload) string {
	ch, values, err := fromWorkload(w)
	if err != nil {
		return "release exists (not compared: " + err.Error() + ")"
	}
	view := func(name, version string, vals map[string]any) map[string]any {
		if vals == nil {
			vals = map[string]any{}
		}
		data, _ := json.Marshal(map[string]any{"chart": map[string]any{"name": name, "version": version}, "values": vals})
		var out map[string]any
		_ = json.Unmarshal(data, &out)
		return out
	}
	live := view(existing.Chart.Metadata.Name, existing.Chart.Metadata.Version, existing.Config)
	exported := view(ch.Metadata.Name, ch.Metadata.Version, values)
	where := fmt.Sprintf(" (chart %s, revision %d, %s)", existing.Chart.Metadata.Version, existing.Version, existing.Info.Status)
	if fields := state.DiffFields(live, exported); len(fields) > 0 {
		return "release exists, differs from the export in " + joinFields(fields) + where + ": left unchanged"
	}
	return "release exists, identical" + where
}

func joinFields(fields []string) string {
	out := ""
	for i, f := range fields {
		if i == 8 {
			return out + ", ..."
		}
		if i > 0 {
			out += ", "
		}
		out += f
	}
	return out
}
