package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"cvmanager.dev/cvmanager/pkg/dashboard"
)

// fleetPeerFlags configure the dashboard's fleet page: the other clusters'
// cvmanager dashboards whose rows it shows beside this cluster's.
type fleetPeerFlags struct {
	name       string
	peers      []string
	tokenFiles []string
	interval   time.Duration
	// poller is set by attach and run by the caller until shutdown.
	poller *dashboard.Peers
}

func (f *fleetPeerFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "fleet-name", "", "this cluster's name on the fleet page "+dashboard.FleetPath+" (default: \"this cluster\")")
	fs.StringArrayVar(&f.peers, "fleet-peer", nil,
		"<name>=<URL> of another cluster's cvmanager, whose /v1/cv/workloads JSON the fleet page shows (repeatable)")
	fs.StringArrayVar(&f.tokenFiles, "fleet-peer-token-file", nil,
		"<name>=<file> holding the bearer token a --read-auth peer wants (a mounted Secret; re-read at every refresh)")
	fs.DurationVar(&f.interval, "fleet-refresh-interval", 30*time.Second, "how often the fleet peers are read")
}

// attach gives the dashboard its peers; the poller, when any, must be run.
func (f *fleetPeerFlags) attach(dash *dashboard.Handler) error {
	dash.FleetName = f.name
	if len(f.peers) == 0 {
		if len(f.tokenFiles) > 0 {
			return fmt.Errorf("--fleet-peer-token-file needs --fleet-peer")
		}
		return nil
	}
	tokens := map[string]string{}
	for _, t := range f.tokenFiles {
		name, file, ok := strings.Cut(t, "=")
		if !ok || name == "" || file == "" {
			return fmt.Errorf("--fleet-peer-token-file %q: want <name>=<file>", t)
		}
		tokens[name] = file
	}
	var peers []dashboard.Peer
	for _, p := range f.peers {
		name, url, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--fleet-peer %q: want <name>=<URL>", p)
		}
		peers = append(peers, dashboard.Peer{Name: name, URL: url, TokenFile: tokens[name]})
		delete(tokens, name)
	}
	for name := range tokens {
		return fmt.Errorf("--fleet-peer-token-file names %q, which no --fleet-peer does", name)
	}
	poller, err := dashboard.NewPeers(peers, nil)
	if err != nil {
		return err
	}
	if f.interval > 0 {
		poller.Interval = f.interval
	}
	dash.Fleet, f.poller = poller, poller
	return nil
}

// run refreshes the peers until ctx ends (nothing when none is configured).
func (f *fleetPeerFlags) run(ctx context.Context) {
	if f.poller != nil {
		go f.poller.Run(ctx)
	}
}
