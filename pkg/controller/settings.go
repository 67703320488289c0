package controller

import "cvmanager.dev/cvmanager/pkg/policy"

// Settings are the controller-wide defaults a running controller may be
// given anew (`cvmanager run --configmap-key` reloads them from a
// ConfigMap). They start as Options.DefaultHistory, DefaultRollback and
// Restrictions.
type Settings struct {
	// DefaultHistory and DefaultRollback apply when a CV leaves them unset.
	DefaultHistory, DefaultRollback bool
	// Restrictions are version rules no CV can loosen.
	Restrictions []policy.Restriction
}

// UpdateSettings replaces the settings; syncs that start afterwards use
// them, a sync under way finishes with the ones it read.
func (c *Controller) UpdateSettings(s Settings) {
	s.Restrictions = append([]policy.Restriction(nil), s.Restrictions...)
	c.liveSettings.Store(&s)
}

// settings are the current settings.
func (c *Controller) settings() Settings {
	if s := c.liveSettings.Load(); s != nil {
		return *s
	}
	return Settings{DefaultHistory: c.opts.DefaultHistory, DefaultRollback: c.opts.DefaultRollback, Restrictions: c.opts.Restrictions}
}
