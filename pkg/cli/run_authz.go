package cli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"cvmanager.dev/cvmanager/pkg/authz"
)

// authzFlags are the controller-wide rules of the author checks
// (pkg/authz, docs/security.md): what no ContainerVersion can loosen.
type authzFlags struct {
	inlineTemplates   bool
	serviceAccounts   []string
	trustUnattributed string
}

func (a *authzFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&a.inlineTemplates, "allow-inline-job-templates", false,
		"allow spec.preRollout.jobs[].template (off: migrations copy a suspended template Job, templateJobName)")
	f.StringSliceVar(&a.serviceAccounts, "job-service-accounts", authz.DefaultJobServiceAccounts,
		"ServiceAccounts (names, any namespace; * for any) that verification and migration Jobs may run as; "+
			"the CV's author must also be allowed to impersonate it")
	f.StringVar(&a.trustUnattributed, "trust-unattributed-created-before", "",
		"RFC 3339 time: ContainerVersions without an author annotation created before it are acted on as before "+
			"the author checks existed (migration; empty: refused until re-applied with `cvmanager cv stamp`)")
}

func (a *authzFlags) settings() (*authz.Settings, error) {
	s := &authz.Settings{InlineJobTemplates: a.inlineTemplates, JobServiceAccounts: a.serviceAccounts}
	if a.trustUnattributed != "" {
		t, err := time.Parse(time.RFC3339, a.trustUnattributed)
		if err != nil {
			return nil, fmt.Errorf("--trust-unattributed-created-before: %w", err)
		}
		s.TrustUnattributedBefore = t
	}
	return s, nil
}
