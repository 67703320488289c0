package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"cvmanager.dev/cvmanager/pkg/imageref"
)

// The push sources beyond Docker Hub, Distribution and ECR. Each one is
// authenticated the strongest way the source can be verified offline
// (see the table in docs/ci-integration.md): GitHub signs its deliveries
// with HMAC-SHA256 of the body; Harbor, GitLab and ACR send a header the
// user configures; Quay and Pub/Sub push carry the secret in the URL.

// githubSignatureOK checks X-Hub-Signature-256 ("sha256=<hex HMAC of the
// body keyed with the secret>") in constant time.
func githubSignatureOK(secret []byte, signature string, body []byte) bool {
	hexSum, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// ParseGitHubPackage reads a GitHub "registry_package" (or "package")
// webhook for a container published to GHCR. Other events (ping, npm
// packages) trigger nothing.
func ParseGitHubPackage(body []byte) ([]Push, error) {
	type pkg struct {
		Name           string                 `json:"name"`
		PackageType    string                 `json:"package_type"`
		Owner          struct{ Login string } `json:"owner"`
		PackageVersion struct {
			Version           string `json:"version"`
			PackageURL        string `json:"package_url"`
			ContainerMetadata struct {
				Tag struct {
					Name   string `json:"name"`
					Digest string `json:"digest"`
				} `json:"tag"`
			} `json:"container_metadata"`
		} `json:"package_version"`
	}
	var hook struct {
		Action          string `json:"action"`
		RegistryPackage *pkg   `json:"registry_package"`
		Package         *pkg   `json:"package"`
	}
	if err := json.Unmarshal(body, &hook); err != nil {
		return nil, fmt.Errorf("invalid GitHub package webhook: %v", err)
	}
	p := hook.RegistryPackage
	if p == nil {
		p = hook.Package
	}
	if p == nil || !strings.EqualFold(p.PackageType, "container") || (hook.Action != "published" && hook.Action != "updated") {
		return nil, nil
	}
	v := p.PackageVersion
	tag := v.ContainerMetadata.Tag.Name
	if tag == "" {
		return nil, nil // an untagged manifest moves no tag
	}
	repo := repoOfReference(v.PackageURL)
	if repo == "" {
		if p.Owner.Login == "" || p.Name == "" {
			return nil, errors.New("GitHub package webhook without package_url or owner and name")
		}
		repo = "ghcr.io/" + p.Owner.Login + "/" + p.Name
	}
	digest := v.ContainerMetadata.Tag.Digest
	if digest == "" {
		digest = v.Version
	}
	return []Push{{Repo: imageref.NormalizeRepo(strings.ToLower(repo)), Tag: tag, Digest: validDigest(digest)}}, nil
}

// ParseHarbor reads a Harbor webhook (PUSH_ARTIFACT); each resource's
// resource_url names host/project/repo:tag.
func ParseHarbor(body []byte) ([]Push, error) {
	var hook struct {
		Type      string `json:"type"`
		EventData struct {
			Resources []struct {
				Digest      string `json:"digest"`
				Tag         string `json:"tag"`
				ResourceURL string `json:"resource_url"`
			} `json:"resources"`
		} `json:"event_data"`
	}
	if err := json.Unmarshal(body, &hook); err != nil {
		return nil, fmt.Errorf("invalid Harbor webhook: %v", err)
	}
	if hook.Type != "PUSH_ARTIFACT" {
		return nil, nil
	}
	var pushes []Push
	for _, r := range hook.EventData.Resources {
		repo := repoOfReference(r.ResourceURL)
		if repo == "" || r.Tag == "" {
			continue
		}
		pushes = append(pushes, Push{Repo: imageref.NormalizeRepo(repo), Tag: r.Tag, Digest: validDigest(r.Digest)})
	}
	return pushes, nil
}

// ParseQuay reads a Quay "repository push" notification: docker_url names
// the repository, updated_tags the tags (Quay sends no digest).
func ParseQuay(body []byte) ([]Push, error) {
	var hook struct {
		DockerURL   string   `json:"docker_url"`
		UpdatedTags []string `json:"updated_tags"`
	}
	if err := json.Unmarshal(body, &hook); err != nil {
		return nil, fmt.Errorf("invalid Quay notification: %v", err)
	}
	if hook.DockerURL == "" {
		return nil, errors.New("Quay notification without docker_url")
	}
	var pushes []Push
	for _, tag := range hook.UpdatedTags {
		if tag != "" {
			pushes = append(pushes, Push{Repo: imageref.NormalizeRepo(hook.DockerURL), Tag: tag})
		}
	}
	return pushes, nil
}

// ParseACR reads an Azure Container Registry webhook: one event, the
// Distribution event shape without the envelope.
func ParseACR(body []byte) ([]Push, error) {
	var event struct {
		Action string `json:"action"`
		Target struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
			Digest     string `json:"digest"`
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
	}
	if err := json.Unmarshal(body, &event); err != nil {
		return nil, fmt.Errorf("invalid ACR webhook: %v", err)
	}
	if event.Action != "push" || event.Target.Tag == "" {
		return nil, nil // deletes, chart pushes and pings trigger nothing
	}
	if event.Request.Host == "" || event.Target.Repository == "" {
		return nil, errors.New("ACR webhook without request.host or target.repository")
	}
	return []Push{{Repo: imageref.NormalizeRepo(event.Request.Host + "/" + event.Target.Repository), Tag: event.Target.Tag,
		Digest: validDigest(event.Target.Digest)}}, nil
}

// ParsePubSubArtifactRegistry reads a Pub/Sub push delivery of an Artifact
// Registry (or GCR) notification from topic "gcr": the message data is
// base64 JSON whose tag is a full reference host/project/repo/image:tag.
func ParsePubSubArtifactRegistry(body []byte) ([]Push, error) {
	var envelope struct {
		Message struct {
			Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return nil, fmt.Errorf("invalid Pub/Sub push message: %v", err)
	}
	var note struct {
		Action string `json:"action"`
		Digest string `json:"digest"`
		Tag    string `json:"tag"`
	}
	if err := json.Unmarshal(envelope.Message.Data, &note); err != nil {
		return nil, fmt.Errorf("invalid Artifact Registry notification in the Pub/Sub message: %v", err)
	}
	if note.Action != "INSERT" || note.Tag == "" {
		return nil, nil // deletions and untagged uploads move no tag
	}
	repo, tag := splitTagReference(note.Tag)
	if repo == "" || tag == "" {
		return nil, fmt.Errorf("Artifact Registry notification tag %q is not host/path:tag", note.Tag)
	}
	_, digest, _ := strings.Cut(note.Digest, "@")
	return []Push{{Repo: imageref.NormalizeRepo(repo), Tag: tag, Digest: validDigest(digest)}}, nil
}

// repoOfReference is the repository of "host/path:tag" (or "@digest"), ""
// when the reference has no tag or digest.
func repoOfReference(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	repo, tag := splitTagReference(ref)
	if tag == "" {
		return ""
	}
	return repo
}

// splitTagReference splits "host:port/path:tag" at the tag's colon, which
// comes after the last slash (a registry port's colon comes before it).
func splitTagReference(ref string) (repo, tag string) {
	i := strings.LastIndex(ref, ":")
	if i <= strings.LastIndex(ref, "/") || i == len(ref)-1 || i == 0 {
		return "", ""
	}
	return ref[:i], ref[i+1:]
}
