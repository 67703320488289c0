package dashboard

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Filter is the workloads page's view, kept in the query string so a
// filtered, sorted page can be bookmarked and works without JavaScript:
// ?namespace=&q=&state=&sort=&order=.
type Filter struct {
	// Namespace narrows the rows to one namespace ("" = all).
	Namespace string
	// Text keeps rows whose namespace, name, CV, tag, version, image,
	// reason or message contains it, ignoring case.
	Text string
	// State keeps rows in this state (see States); "" keeps all.
	State string
	// Sort is a column key (sortKeys); "" keeps the urgency order.
	Sort string
	// Desc reverses the sort.
	Desc bool
}

// sortKeys are the sortable columns and the value each compares.
var sortKeys = map[string]func(Row) string{
	"state":     func(r Row) string { return strconv.Itoa(slices.Index(States, r.State)) },
	"namespace": func(r Row) string { return r.Namespace },
	"name":      func(r Row) string { return r.Name },
	"cv":        func(r Row) string { return r.CV },
	"tag":       func(r Row) string { return r.Tag },
	"version":   func(r Row) string { return r.Version },
	"pods":      func(r Row) string { return pad(int64(r.AvailablePods)) },
	"updated":   func(r Row) string { return pad(r.LastUpdate.Unix()) },
}

// pad makes numbers compare as strings (non-negative values only).
func pad(n int64) string {
	if n < 0 {
		n = 0
	}
	s := strconv.FormatInt(n, 10)
	return strings.Repeat("0", 20-len(s)) + s
}

// ParseFilter reads a Filter from a query string; unknown states and sort
// keys are ignored rather than refused, so an old bookmark still opens.
func ParseFilter(q url.Values) Filter {
	f := Filter{Namespace: q.Get("namespace"), Text: strings.TrimSpace(q.Get("q")), Desc: q.Get("order") == "desc"}
	if slices.Contains(States, q.Get("state")) {
		f.State = q.Get("state")
	}
	if _, ok := sortKeys[q.Get("sort")]; ok {
		f.Sort = q.Get("sort")
	}
	return f
}

// Query is the filter as a query string (format=html included), the
// inverse of ParseFilter; empty fields are left out.
func (f Filter) Query() string {
	v := url.Values{"format": {"html"}}
	for k, val := range map[string]string{"namespace": f.Namespace, "q": f.Text, "state": f.State, "sort": f.Sort} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if f.Desc && f.Sort != "" {
		v.Set("order", "desc")
	}
	return v.Encode()
}

// With returns a copy of f with the state set, for the count links.
func (f Filter) With(state string) Filter { f.State = state; return f }

// SortedBy returns a copy sorted by key, reversing when already sorted so.
func (f Filter) SortedBy(key string) Filter {
	f.Desc = f.Sort == key && !f.Desc
	f.Sort = key
	return f
}

// matchesText says whether the row contains f.Text.
func (f Filter) matchesText(r Row) bool {
	if f.Text == "" {
		return true
	}
	needle := strings.ToLower(f.Text)
	for _, s := range []string{r.Namespace, r.Name, r.CV, r.Tag, r.Version, r.Image, r.Reason, r.LastError, r.State} {
		if strings.Contains(strings.ToLower(s), needle) {
			return true
		}
	}
	return false
}

// Apply narrows rows by text, counts them per state, then keeps the
// chosen state and sorts. Counts ignore the state filter so each count
// says what clicking it would show.
func (f Filter) Apply(rows []Row) (kept []Row, counts map[string]int) {
	counts = map[string]int{}
	for _, r := range rows {
		if !f.matchesText(r) {
			continue
		}
		counts[r.State]++
		if f.State == "" || r.State == f.State {
			kept = append(kept, r)
		}
	}
	if key := sortKeys[f.Sort]; key != nil {
		sort.SliceStable(kept, func(i, j int) bool {
			if f.Desc {
				return key(kept[i]) > key(kept[j])
			}
			return key(kept[i]) < key(kept[j])
		})
	}
	return kept, counts
}
