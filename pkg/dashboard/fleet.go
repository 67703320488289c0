package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/pkg/fleet"
)

// FleetPath is the fleet page: one row per ContainerVersion, one column per
// cluster, this controller's own and its peers'.
const FleetPath = "/v1/cv/fleet"

// Bounds of a peer read: a slow or hostile peer must not stall the
// refresh or grow memory without end.
const (
	peerTimeout  = 5 * time.Second
	peerMaxBytes = 32 << 20
)

// Peer is another cluster's cvmanager whose dashboard JSON the fleet page
// shows. TokenFile, when set, holds the bearer token its --read-auth
// wants; it is read at every refresh so a rotated token is picked up.
type Peer struct {
	Name      string
	URL       string
	TokenFile string
}

// Peers refreshes the peers' /v1/cv/workloads JSON in the background; the
// fleet page reads the last answers from memory, so rendering it costs no
// request. A peer whose last read failed keeps its last good rows, marked
// stale with the error; one never read is marked unreachable, never empty.
type Peers struct {
	peers  []Peer
	client *http.Client
	// Interval between refreshes (default 30 s); a peer not refreshed for
	// three intervals is stale even if its last read succeeded.
	Interval time.Duration
	Clock    clock.Clock

	mu     sync.Mutex
	states map[string]*peerState
}

type peerState struct {
	entries []fleet.Entry // nil until a read succeeds
	fetched time.Time     // of entries
	err     string        // of the last read, "" when it succeeded
}

// NewPeers checks the peers' names and URLs; client nil uses a client with
// the peer timeout.
func NewPeers(peers []Peer, client *http.Client) (*Peers, error) {
	seen := map[string]bool{}
	for _, p := range peers {
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("fleet peer %q: URL %q must be http(s)://host[:port]", p.Name, p.URL)
		}
		if p.Name == "" || seen[p.Name] {
			return nil, fmt.Errorf("fleet peer names must be unique and not empty (%q)", p.Name)
		}
		seen[p.Name] = true
	}
	if client == nil {
		client = &http.Client{Timeout: peerTimeout}
	}
	return &Peers{peers: peers, client: client, Interval: 30 * time.Second, Clock: clock.RealClock{}, states: map[string]*peerState{}}, nil
}

// Run refreshes every peer now and then every Interval until ctx ends.
func (p *Peers) Run(ctx context.Context) {
	for {
		p.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-p.Clock.After(p.Interval):
		}
	}
}

// Refresh reads every peer once, in parallel.
func (p *Peers) Refresh(ctx context.Context) {
	var wg sync.WaitGroup
	for _, peer := range p.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries, err := p.read(ctx, peer)
			p.mu.Lock()
			defer p.mu.Unlock()
			st := p.states[peer.Name]
			if st == nil {
				st = &peerState{}
				p.states[peer.Name] = st
			}
			if err != nil {
				st.err = err.Error()
				return
			}
			st.entries, st.fetched, st.err = entries, p.Clock.Now(), ""
		}()
	}
	wg.Wait()
}

// read GETs a peer's rows and folds them into entries.
func (p *Peers) read(ctx context.Context, peer Peer) ([]fleet.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(peer.URL, "/")+"/v1/cv/workloads?format=json", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if peer.TokenFile != "" {
		token, err := os.ReadFile(peer.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the token file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", peer.URL, resp.Status)
	}
	var rows []Row
	if err := json.NewDecoder(io.LimitReader(resp.Body, peerMaxBytes)).Decode(&rows); err != nil {
		return nil, fmt.Errorf("reading %s's rows: %w", peer.URL, err)
	}
	return EntriesOfRows(rows), nil
}

// Clusters are the peers' columns as last read, stale ones marked.
func (p *Peers) Clusters() []fleet.Cluster {
	if p == nil {
		return nil
	}
	now := p.Clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]fleet.Cluster, 0, len(p.peers))
	for _, peer := range p.peers {
		c := fleet.Cluster{Name: peer.Name}
		st := p.states[peer.Name]
		switch {
		case st == nil:
			c.Error = "not read yet"
		default:
			c.Entries, c.Fetched, c.Error = st.entries, st.fetched, st.err
			c.Stale = st.entries != nil && (st.err != "" || now.Sub(st.fetched) > 3*p.Interval)
		}
		out = append(out, c)
	}
	return out
}

// URLOf is a peer's base URL, for links to its pages ("" when unknown).
func (p *Peers) URLOf(name string) string {
	if p == nil {
		return ""
	}
	for _, peer := range p.peers {
		if peer.Name == name {
			return strings.TrimSuffix(peer.URL, "/")
		}
	}
	return ""
}

// EntriesOfRows folds workload rows into one entry per CV: a CV's
// workloads share its version; the worst state and any drift win.
func EntriesOfRows(rows []Row) []fleet.Entry {
	out := make([]fleet.Entry, 0, len(rows))
	for _, r := range rows {
		state := r.State
		if state == "" {
			state = StateOf(r)
		}
		out = append(out, fleet.Entry{Namespace: r.Namespace, Name: r.CV, Version: r.Version, Digest: r.Digest,
			State: state, Since: r.LastUpdate, Drifted: r.Drifted, Held: r.AvailableVersion, HeldUntil: r.HeldUntil})
	}
	return out
}

// fleetPage is what the fleet template shows.
type fleetPage struct {
	Matrix fleet.Matrix
	// Links are the clusters' base URLs ("" for this one: relative links).
	Links []string
	// Peers is false when no peer is configured (the page says how).
	Peers bool
	Now   time.Time
}

// fleetView answers the fleet page: this cluster's rows (from the caches)
// and the peers' last answers, as HTML or JSON (fleet.Matrix).
func (h *Handler) fleetView(w http.ResponseWriter, r *http.Request) {
	rows, err := Rows(h.Source, "")
	if err != nil {
		http.Error(w, "listing workloads: "+err.Error(), http.StatusInternalServerError)
		return
	}
	now := h.Clock.Now()
	name := h.FleetName
	if name == "" {
		name = "this cluster"
	}
	clusters := append([]fleet.Cluster{{Name: name, Entries: EntriesOfRows(rows), Fetched: now}}, h.Fleet.Clusters()...)
	m := fleet.NewMatrix(clusters)
	if !wantsHTML(r) {
		writeJSON(w, m)
		return
	}
	links := make([]string, len(clusters))
	for i := 1; i < len(clusters); i++ {
		links[i] = h.Fleet.URLOf(clusters[i].Name)
	}
	h.render(w, "fleet.html", fleetPage{Matrix: m, Links: links, Peers: h.Fleet != nil && len(h.Fleet.peers) > 0, Now: now})
}
