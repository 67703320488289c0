package apitest

import (
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/gen"
)

type spec = cvv1.ContainerVersionSpec

// invalidCV is one entry of the bad-input corpus: a change that makes a
// valid CV invalid, and the words the apiserver's refusal must contain so
// a person knows which field is wrong and why.
type invalidCV struct {
	field string
	why   string
	edit  func(*spec)
	want  []string
}

func long(n int) string { return strings.Repeat("a", n) }

var (
	validNotification = cvv1.NotificationSpec{Name: "hook", Type: "Webhook", URLSecretRef: cvv1.SecretKeyRef{Name: "s", Key: "url"}}
	validJob          = cvv1.PreRolloutJob{Name: "migrate", TemplateJobName: "migrate-template"}
	blueGreen         = func(s *spec, edit func(*cvv1.BlueGreenSpec)) {
		bg := &cvv1.BlueGreenSpec{ServiceName: "web", LabelNames: []string{"color"}}
		edit(bg)
		s.Strategy = cvv1.StrategySpec{Kind: cvv1.StrategyServiceBlueGreen, BlueGreen: bg}
	}
)

// corpus covers every spec field that has a constraint.
var corpus = []invalidCV{
	{"imageRepo", "missing", func(s *spec) { s.ImageRepo = "" }, []string{"spec.imageRepo"}},
	{"imageRepo", "over 255 characters", func(s *spec) { s.ImageRepo = long(256) }, []string{"spec.imageRepo", "Too long"}},
	{"imageRepo", "carries a tag", func(s *spec) { s.ImageRepo = "reg.io/app:1.0" }, []string{"imageRepo must not contain a tag"}},
	{"imageRepo", "carries a digest", func(s *spec) { s.ImageRepo = "app@sha256:" + long(64) }, []string{"imageRepo must not contain a digest"}},
	{"imageRepo", "has spaces", func(s *spec) { s.ImageRepo = "team/my app" }, []string{"imageRepo must be a repository name"}},
	{"imageRepo", "ends with a slash", func(s *spec) { s.ImageRepo = "reg.io/team/" }, []string{"imageRepo must be a repository name"}},
	{"imageRepo", "carries a scheme", func(s *spec) { s.ImageRepo = "https://reg.io/app" }, []string{"imageRepo must"}},
	{"tag", "missing", func(s *spec) { s.Tag = "" }, []string{"spec.tag"}},
	{"tag", "over 128 characters", func(s *spec) { s.Tag = long(129) }, []string{"spec.tag", "Too long"}},
	{"tag", "starts with a dash", func(s *spec) { s.Tag = "-prod" }, []string{"tag must be a valid image tag"}},
	{"tag", "has a colon", func(s *spec) { s.Tag = "env:prod" }, []string{"tag must be a valid image tag"}},
	{"versionSyntax", "over 256 characters", func(s *spec) { s.VersionSyntax = long(257) }, []string{"spec.versionSyntax", "Too long"}},
	{"pollIntervalSeconds", "below 5", func(s *spec) { s.PollIntervalSeconds = 4 }, []string{"spec.pollIntervalSeconds", "greater than or equal to 5"}},
	{"pollIntervalSeconds", "negative", func(s *spec) { s.PollIntervalSeconds = -60 }, []string{"spec.pollIntervalSeconds"}},
	{"livenessSeconds", "below 10", func(s *spec) { s.LivenessSeconds = 9 }, []string{"spec.livenessSeconds", "greater than or equal to 10"}},
	{"livenessSeconds", "over a week", func(s *spec) { s.LivenessSeconds = 604801 }, []string{"spec.livenessSeconds", "less than or equal to 604800"}},
	{"timeoutSeconds", "negative", func(s *spec) { s.TimeoutSeconds = -1 }, []string{"spec.timeoutSeconds", "greater than or equal to 1"}},
	{"timeoutSeconds", "over a day", func(s *spec) { s.TimeoutSeconds = 86401 }, []string{"spec.timeoutSeconds", "less than or equal to 86400"}},
	{"selector", "missing", func(s *spec) { s.Selector = nil }, []string{"spec.selector", "Required value"}},
	{"selector", "empty matchLabels", func(s *spec) { s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{}} }, []string{"selector must not be empty"}},
	{"container.name", "over 63 characters", func(s *spec) { s.Container.Name = long(64) }, []string{"spec.container.name", "Too long"}},
	{"container.name", "has a dot", func(s *spec) { s.Container.Name = "app.v1" }, []string{"container.name must be a DNS label"}},
	{"container.verify", "more than 8", func(s *spec) { s.Container.Verify = make([]cvv1.VerifySpec, 9) }, []string{"spec.container.verify", "must have at most 8 items"}},
	{"container.verify.image", "missing", func(s *spec) { s.Container.Verify = []cvv1.VerifySpec{{Kind: "Image"}} }, []string{"spec.container.verify[0].image"}},
	{"container.verify.kind", "unknown", func(s *spec) { s.Container.Verify = []cvv1.VerifySpec{{Kind: "Script", Image: "v:1"}} }, []string{"spec.container.verify[0].kind", `Unsupported value: "Script"`}},
	{"container.verify.timeoutSeconds", "negative", func(s *spec) { s.Container.Verify = []cvv1.VerifySpec{{Image: "v:1", TimeoutSeconds: -1}} }, []string{"spec.container.verify[0].timeoutSeconds"}},
	{"container.verify.tag", "over 128 characters", func(s *spec) { s.Container.Verify = []cvv1.VerifySpec{{Image: "v", Tag: long(129)}} }, []string{"spec.container.verify[0].tag", "Too long"}},
	{"strategy.kind", "unknown", func(s *spec) { s.Strategy.Kind = "Canary" }, []string{"spec.strategy.kind", `Unsupported value: "Canary"`}},
	{"strategy.blueGreen", "missing for ServiceBlueGreen", func(s *spec) { s.Strategy.Kind = cvv1.StrategyServiceBlueGreen }, []string{"strategy.kind ServiceBlueGreen needs strategy.blueGreen"}},
	{"strategy.blueGreen.serviceName", "missing", func(s *spec) { blueGreen(s, func(b *cvv1.BlueGreenSpec) { b.ServiceName = "" }) }, []string{"spec.strategy.blueGreen.serviceName"}},
	{"strategy.blueGreen.verificationServiceName", "over 63 characters", func(s *spec) { blueGreen(s, func(b *cvv1.BlueGreenSpec) { b.VerificationServiceName = long(64) }) }, []string{"spec.strategy.blueGreen.verificationServiceName", "Too long"}},
	{"strategy.blueGreen.labelNames", "empty", func(s *spec) { blueGreen(s, func(b *cvv1.BlueGreenSpec) { b.LabelNames = []string{} }) }, []string{"spec.strategy.blueGreen.labelNames"}},
	{"strategy.blueGreen.labelNames", "an empty name", func(s *spec) { blueGreen(s, func(b *cvv1.BlueGreenSpec) { b.LabelNames = []string{""} }) }, []string{"spec.strategy.blueGreen.labelNames[0]"}},
	{"strategy.verify", "more than 8", func(s *spec) { s.Strategy.Verify = make([]cvv1.VerifySpec, 9) }, []string{"spec.strategy.verify", "must have at most 8 items"}},
	{"history.limit", "negative", func(s *spec) { s.History = cvv1.HistorySpec{Enabled: true, Limit: -1} }, []string{"spec.history.limit", "greater than or equal to 1"}},
	{"history.limit", "over 1000", func(s *spec) { s.History = cvv1.HistorySpec{Enabled: true, Limit: 1001} }, []string{"spec.history.limit", "less than or equal to 1000"}},
	{"history.name", "uppercase", func(s *spec) { s.History = cvv1.HistorySpec{Enabled: true, Name: "My_History"} }, []string{"history.name must be a lowercase DNS subdomain"}},
	{"history.name", "over 200 characters", func(s *spec) { s.History = cvv1.HistorySpec{Name: long(201)} }, []string{"spec.history.name", "Too long"}},
	{"config.name", "missing", func(s *spec) { s.Config = &cvv1.ConfigSpec{Key: "version"} }, []string{"spec.config.name"}},
	{"config.key", "has a slash", func(s *spec) { s.Config = &cvv1.ConfigSpec{Name: "versions", Key: "a/b"} }, []string{"config.key must be a valid ConfigMap key"}},
	{"policy.selection", "unknown", func(s *spec) { s.Policy = &cvv1.PolicySpec{Selection: "Newest"} }, []string{"spec.policy.selection", `Unsupported value: "Newest"`}},
	{"policy.semverRange", "missing for Semver", func(s *spec) { s.Policy = &cvv1.PolicySpec{Selection: cvv1.SelectSemver} }, []string{"policy.selection Semver needs policy.semverRange"}},
	{"policy.tagRegex", "missing for Regex", func(s *spec) { s.Policy = &cvv1.PolicySpec{Selection: cvv1.SelectRegex} }, []string{"policy.selection Regex needs policy.tagRegex"}},
	{"policy.semverRange", "over 256 characters", func(s *spec) { s.Policy = &cvv1.PolicySpec{SemverRange: long(257)} }, []string{"spec.policy.semverRange", "Too long"}},
	{"policy.tagRegex", "over 256 characters", func(s *spec) { s.Policy = &cvv1.PolicySpec{TagRegex: long(257)} }, []string{"spec.policy.tagRegex", "Too long"}},
	{"policy.order", "unknown", func(s *spec) { s.Policy = &cvv1.PolicySpec{Order: "Random"} }, []string{"spec.policy.order", `Unsupported value: "Random"`}},
	{"policy.allowedVersions", "over 256 characters", func(s *spec) { s.Policy = &cvv1.PolicySpec{AllowedVersions: long(257)} }, []string{"spec.policy.allowedVersions", "Too long"}},
	{"policy.releaseMode", "unknown", func(s *spec) { s.Policy = &cvv1.PolicySpec{ReleaseMode: "Sometimes"} }, []string{"spec.policy.releaseMode", `Unsupported value: "Sometimes"`}},
	{"versionSyntax", "names a branch but does not compile", func(s *spec) { s.VersionSyntax = `(?P<branch>[a-z-+)-[0-9a-f]{10}` }, []string{"versionSyntax with a branch group must be a valid regular expression"}},
	{"policy.autoReleaseBranches", "without a branch group", func(s *spec) { s.Policy = &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}} }, []string{"need a versionSyntax with a named branch group"}},
	{"policy.branchRestriction", "without a branch group", func(s *spec) { s.Policy = &cvv1.PolicySpec{BranchRestriction: "main"} }, []string{"need a versionSyntax with a named branch group"}},
	{"policy.branchRestriction", "does not compile", func(s *spec) {
		s.VersionSyntax, s.Policy = branchSyntax, &cvv1.PolicySpec{BranchRestriction: "main("}
	}, []string{"policy.branchRestriction must be a valid regular expression"}},
	{"policy.autoReleaseBranches", "outside the branch restriction", func(s *spec) {
		s.VersionSyntax, s.Policy = branchSyntax, &cvv1.PolicySpec{AutoReleaseBranches: []string{"feature"}, BranchRestriction: "main|release-.*"}
	}, []string{"every policy.autoReleaseBranches entry must match policy.branchRestriction"}},
	{"policy.autoReleaseBranches", "with releaseMode Manual", func(s *spec) {
		s.VersionSyntax, s.Policy = branchSyntax, &cvv1.PolicySpec{AutoReleaseBranches: []string{"main"}, ReleaseMode: "Manual"}
	}, []string{"policy.autoReleaseBranches needs releaseMode Auto"}},
	{"policy.branchRestriction", "with Semver selection", func(s *spec) {
		s.VersionSyntax, s.Policy = branchSyntax, &cvv1.PolicySpec{BranchRestriction: "main", Selection: cvv1.SelectSemver, SemverRange: ">=1"}
	}, []string{"branch policies need selection Digest"}},
	{"policy.autoReleaseBranches", "duplicate", func(s *spec) {
		s.VersionSyntax, s.Policy = branchSyntax, &cvv1.PolicySpec{AutoReleaseBranches: []string{"main", "main"}}
	}, []string{"spec.policy.autoReleaseBranches[1]", "Duplicate value"}},
	{"preRollout.jobs", "both template and templateJobName", func(s *spec) {
		j := validJob
		j.Template = &batchv1.JobTemplateSpec{}
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{j}}
	}, []string{"needs exactly one of template or templateJobName"}},
	{"preRollout.jobs.name", "not a DNS label", func(s *spec) {
		j := validJob
		j.Name = "Migrate_DB"
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{j}}
	}, []string{"preRollout job name must be a DNS label"}},
	{"preRollout.jobs.name", "over 40 characters", func(s *spec) {
		j := validJob
		j.Name = long(41)
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{j}}
	}, []string{"spec.preRollout.jobs[0].name", "Too long"}},
	{"preRollout.jobs", "duplicate names", func(s *spec) { s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{validJob, validJob}} }, []string{"spec.preRollout.jobs[1]", "Duplicate value"}},
	{"preRollout.jobs", "more than 8", func(s *spec) {
		s.PreRollout = &cvv1.PreRolloutSpec{}
		for i := range 9 {
			j := validJob
			j.Name = fmt.Sprintf("job-%d", i)
			s.PreRollout.Jobs = append(s.PreRollout.Jobs, j)
		}
	}, []string{"spec.preRollout.jobs", "must have at most 8 items"}},
	{"preRollout.jobs.onFailure", "unknown", func(s *spec) {
		j := validJob
		j.OnFailure = "Ignore"
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{j}}
	}, []string{"spec.preRollout.jobs[0].onFailure", `Unsupported value: "Ignore"`}},
	{"preRollout.jobs.timeoutSeconds", "negative", func(s *spec) {
		j := validJob
		j.TimeoutSeconds = -1
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{j}}
	}, []string{"spec.preRollout.jobs[0].timeoutSeconds"}},
	{"preRollout.jobs.templateJobName", "over 63 characters", func(s *spec) {
		j := validJob
		j.TemplateJobName = long(64)
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{j}}
	}, []string{"spec.preRollout.jobs[0].templateJobName", "Too long"}},
	{"preRollout.jobs.containers", "more than 16", func(s *spec) {
		j := validJob
		j.Containers = make([]string, 17)
		s.PreRollout = &cvv1.PreRolloutSpec{Jobs: []cvv1.PreRolloutJob{j}}
	}, []string{"spec.preRollout.jobs[0].containers", "must have at most 16 items"}},
	{"notifications.type", "unknown", func(s *spec) {
		n := validNotification
		n.Type = "Email"
		s.Notifications = []cvv1.NotificationSpec{n}
	}, []string{"spec.notifications[0].type", `Unsupported value: "Email"`}},
	{"notifications.name", "missing", func(s *spec) {
		n := validNotification
		n.Name = ""
		s.Notifications = []cvv1.NotificationSpec{n}
	}, []string{"spec.notifications[0].name"}},
	{"notifications", "duplicate names", func(s *spec) { s.Notifications = []cvv1.NotificationSpec{validNotification, validNotification} }, []string{"spec.notifications[1]", "Duplicate value"}},
	{"notifications.urlSecretRef.key", "missing", func(s *spec) {
		n := validNotification
		n.URLSecretRef.Key = ""
		s.Notifications = []cvv1.NotificationSpec{n}
	}, []string{"spec.notifications[0].urlSecretRef.key"}},
	{"notifications.hmacSecretRef.name", "missing", func(s *spec) {
		n := validNotification
		n.HMACSecretRef = &cvv1.SecretKeyRef{Key: "k"}
		s.Notifications = []cvv1.NotificationSpec{n}
	}, []string{"spec.notifications[0].hmacSecretRef.name"}},
	{"notifications.tokenSecretRef", "missing for Grafana", func(s *spec) {
		n := validNotification
		n.Type = "Grafana"
		s.Notifications = []cvv1.NotificationSpec{n}
	}, []string{"spec.notifications[0]", "a Grafana notification needs tokenSecretRef"}},
	{"notifications.tokenSecretRef", "set for a Webhook", func(s *spec) {
		n := validNotification
		n.TokenSecretRef = &cvv1.SecretKeyRef{Name: "s", Key: "token"}
		s.Notifications = []cvv1.NotificationSpec{n}
	}, []string{"spec.notifications[0]", "tokenSecretRef is only for type Grafana"}},
	{"notifications.events", "unknown event", func(s *spec) {
		n := validNotification
		n.Events = []string{"Deployed"}
		s.Notifications = []cvv1.NotificationSpec{n}
	}, []string{"spec.notifications[0].events[0]", `Unsupported value: "Deployed"`}},
	{"notifications", "more than 16", func(s *spec) {
		for i := range 17 {
			n := validNotification
			n.Name = fmt.Sprintf("hook-%d", i)
			s.Notifications = append(s.Notifications, n)
		}
	}, []string{"spec.notifications", "must have at most 16 items"}},
	{"imagePullSecrets.name", "missing", func(s *spec) { s.ImagePullSecrets = []cvv1.LocalObjectReference{{}} }, []string{"spec.imagePullSecrets[0].name"}},
	{"imagePullSecrets", "more than 8", func(s *spec) { s.ImagePullSecrets = make([]cvv1.LocalObjectReference, 9) }, []string{"spec.imagePullSecrets", "must have at most 8 items"}},
	{"writeBack.targets", "empty", func(s *spec) { writeBack(s, func(w *cvv1.WriteBackSpec) { w.Targets = nil }) }, []string{"spec.writeBack.targets"}},
	{"writeBack.url", "embeds credentials", func(s *spec) {
		writeBack(s, func(w *cvv1.WriteBackSpec) { w.URL = "https://user:token@git.example.com/team/deploy.git" })
	}, []string{"spec.writeBack.url", "writeBack.url must not embed credentials"}},
	{"writeBack.url", "not a git URL", func(s *spec) { writeBack(s, func(w *cvv1.WriteBackSpec) { w.URL = "ftp://x" }) }, []string{"writeBack.url must be an https://"}},
	{"writeBack.secretRef", "ssh without known_hosts", func(s *spec) {
		writeBack(s, func(w *cvv1.WriteBackSpec) {
			w.URL = "ssh://git@git.example.com/team/deploy.git"
			w.SecretRef = &cvv1.GitSecretRef{Name: "deploy", IdentityKey: "identity"}
		})
	}, []string{"secretRef.identityKey needs secretRef.knownHostsKey"}},
	{"writeBack.mode", "PullRequest without provider", func(s *spec) {
		writeBack(s, func(w *cvv1.WriteBackSpec) { w.Mode = cvv1.WriteBackPullRequest })
	}, []string{"writeBack.mode PullRequest needs writeBack.pullRequest.provider"}},
	{"writeBack.branch", "not a branch name", func(s *spec) { writeBack(s, func(w *cvv1.WriteBackSpec) { w.Branch = "a..b" }) }, []string{"writeBack.branch must be a valid git branch name"}},
	{"writeBack.targets.path", "leaves the repository", func(s *spec) {
		writeBack(s, func(w *cvv1.WriteBackSpec) { w.Targets[0].Path = "../secrets.yaml" })
	}, []string{"spec.writeBack.targets[0].path", "target path must be relative"}},
	{"writeBack.targets.kind", "unknown", func(s *spec) { writeBack(s, func(w *cvv1.WriteBackSpec) { w.Targets[0].Kind = "Helm" }) }, []string{"spec.writeBack.targets[0].kind", `Unsupported value: "Helm"`}},
	{"writeBack.targets.yamlPaths", "missing for YAMLPath", func(s *spec) {
		writeBack(s, func(w *cvv1.WriteBackSpec) {
			w.Targets[0] = cvv1.WriteBackTarget{Path: "values.yaml", Kind: cvv1.TargetYAMLPath}
		})
	}, []string{"a YAMLPath target needs yamlPaths"}},
}

// writeBack sets a valid spec.writeBack, then applies edit to it.
func writeBack(s *spec, edit func(*cvv1.WriteBackSpec)) {
	w := validWriteBack()
	edit(w)
	s.WriteBack = w
}

func validWriteBack() *cvv1.WriteBackSpec {
	return &cvv1.WriteBackSpec{
		URL:       "https://git.example.com/team/deploy.git",
		SecretRef: &cvv1.GitSecretRef{Name: "deploy", TokenKey: "token"},
		Targets:   []cvv1.WriteBackTarget{{Path: "overlays/prod/kustomization.yaml", Kind: cvv1.TargetKustomize}},
	}
}

// TestInvalidCVCorpusIsRejectedAtAdmission creates every entry of the
// corpus: each must be refused as Invalid, with the field path and the
// reason in the message.
func TestInvalidCVCorpusIsRejectedAtAdmission(t *testing.T) {
	ctx, client, ns := setup(t)
	for i, tc := range corpus {
		t.Run(tc.field+": "+tc.why, func(t *testing.T) {
			cv := gen.CV(ns, fmt.Sprintf("corpus-%d", i), gen.WithSpec(tc.edit))
			_, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{})
			if err == nil {
				t.Fatalf("accepted a CV whose %s %s", tc.field, tc.why)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal does not say %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestGrafanaNotificationIsAccepted: the Grafana type with its token is a
// valid spec (the corpus above proves the rules are not vacuous).
// branchSyntax is a versionSyntax whose versions name their branch.
const branchSyntax = `(?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10})`

func TestBranchPolicyIsAccepted(t *testing.T) {
	ctx, client, ns := setup(t)
	cv := gen.CV(ns, "branches", gen.WithSpec(func(s *spec) {
		s.VersionSyntax = branchSyntax
		s.Policy = &cvv1.PolicySpec{AutoReleaseBranches: []string{"main", "release-1"}, BranchRestriction: "main|release-.*"}
	}))
	if _, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a valid branch policy was refused: %v", err)
	}
}

// TestWriteBackIsAccepted: HTTPS and SSH write-backs with every kind of
// target, PullRequest mode, and targets alone (the repository from the
// namespace's cvmanager-defaults) are valid specs.
func TestWriteBackIsAccepted(t *testing.T) {
	ctx, client, ns := setup(t)
	https := validWriteBack()
	https.Targets = append(https.Targets,
		cvv1.WriteBackTarget{Path: "charts/web/values.yaml", Kind: cvv1.TargetYAMLPath, YAMLPaths: &cvv1.YAMLPaths{Tag: "image.tag", Digest: "image.digest"}},
		cvv1.WriteBackTarget{Path: "apps/web.yaml", Kind: cvv1.TargetSetter, Setter: "prod:web"})
	ssh := validWriteBack()
	ssh.URL = "git@git.example.com:team/deploy.git"
	ssh.SecretRef = &cvv1.GitSecretRef{Name: "deploy", IdentityKey: "identity", KnownHostsKey: "known_hosts"}
	ssh.Mode = cvv1.WriteBackPullRequest
	ssh.PullRequest = &cvv1.PullRequestSpec{Provider: "GitLab", APIURL: "https://git.example.com/api/v4"}
	targetsOnly := &cvv1.WriteBackSpec{Targets: validWriteBack().Targets}
	for name, wb := range map[string]*cvv1.WriteBackSpec{"https": https, "ssh-pr": ssh, "targets-only": targetsOnly} {
		cv := gen.CV(ns, "writeback-"+name, gen.WithSpec(func(s *spec) { s.WriteBack = wb }))
		if _, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{}); err != nil {
			t.Errorf("%s: a valid writeBack was refused: %v", name, err)
		}
	}
}

func TestGrafanaNotificationIsAccepted(t *testing.T) {
	ctx, client, ns := setup(t)
	n := validNotification
	n.Type, n.TokenSecretRef = "Grafana", &cvv1.SecretKeyRef{Name: "grafana", Key: "token"}
	cv := gen.CV(ns, "grafana", gen.WithSpec(func(s *spec) { s.Notifications = []cvv1.NotificationSpec{n} }))
	if _, err := client.CvmanagerV1alpha1().ContainerVersions(ns).Create(ctx, cv, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a Grafana notification with tokenSecretRef was refused: %v", err)
	}
}
