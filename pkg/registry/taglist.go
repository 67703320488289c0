package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ListTags implements Registry. It pages through tags/list itself because
// registries disagree on the Link header: Quay sends it without angle
// brackets and with an opaque token, Nexus drops the port. Pages are
// bounded by MaxTagPages.
func (o *OCI) ListTags(ctx context.Context, repo Repo) ([]string, error) {
	r, err := o.repository(repo.Name)
	if err != nil {
		return nil, err
	}
	c, err := o.client(ctx, r, repo.Auth)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", repo.Name, err)
	}
	rt := c.rt
	n := o.pageSize(r.RegistryStr())
	tags, err := listTags(ctx, rt, r, n, o.opts.MaxTagPages)
	if err != nil && o.opts.TagPageSize <= 0 && n > smallPage && pageTooLarge(err) {
		o.mu.Lock()
		o.smallPages[r.RegistryStr()] = true
		o.mu.Unlock()
		return listTags(ctx, rt, r, smallPage, o.opts.MaxTagPages)
	}
	return tags, err
}

// Page sizes of tags/list: large pages keep a new digest's listing to one
// request in repositories of up to 1,000 tags; Quay allows at most 100.
const (
	largePage = 1000
	smallPage = 100
)

// pageSize is the n to ask host for: the configured one, else 100 for Quay
// and hosts that refused 1,000, else 1,000.
func (o *OCI) pageSize(host string) int {
	if o.opts.TagPageSize > 0 {
		return o.opts.TagPageSize
	}
	o.mu.Lock()
	small := o.smallPages[host]
	o.mu.Unlock()
	if small || strings.Contains(strings.ToLower(host), "quay") {
		return smallPage
	}
	return largePage
}

// pageTooLarge recognises a registry refusing the page size: 400 (Quay's
// TOO_MANY_TAGS_REQUESTED, Distribution's PAGINATION_NUMBER_INVALID) or
// 405 (ECR past 1,000).
func pageTooLarge(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && (terr.StatusCode == http.StatusBadRequest || terr.StatusCode == http.StatusMethodNotAllowed)
}

// listTags follows tags/list pages from the first, n tags at a time.
func listTags(ctx context.Context, rt http.RoundTripper, r name.Repository, n, maxPages int) ([]string, error) {
	next := &url.URL{Scheme: r.Scheme(), Host: r.RegistryStr(), Path: "/v2/" + r.RepositoryStr() + "/tags/list",
		RawQuery: url.Values{"n": {strconv.Itoa(n)}}.Encode()}
	var tags []string
	for page := 0; next != nil; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("listing tags of %s: more than %d pages of %d tags", r, maxPages, n)
		}
		pageTags, link, err := fetchTagPage(ctx, rt, next)
		if err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", r, err)
		}
		tags = append(tags, pageTags...)
		if next, err = NextPage(link, next); err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", r, err)
		}
	}
	return tags, nil
}

func fetchTagPage(ctx context.Context, rt http.RoundTripper, u *url.URL) ([]string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", err
	}
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, "", fmt.Errorf("decoding %s: %w", u.Redacted(), err)
	}
	return body.Tags, resp.Header.Get("Link"), nil
}

// NextPage reads the rel="next" target of a Link header, with or without
// angle brackets, relative to the current page's URL. A link to another
// host is refused (it would send credentials elsewhere); a link that only
// drops the port, as Nexus sends, keeps the current host. nil means no
// next page.
func NextPage(link string, current *url.URL) (*url.URL, error) {
	target, ok := nextTarget(link)
	if !ok {
		return nil, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("bad Link header %q: %w", link, err)
	}
	u = current.ResolveReference(u)
	if u.Host != current.Host {
		if u.Hostname() != current.Hostname() || u.Port() != "" {
			return nil, fmt.Errorf("link to another host %q refused", u.Host)
		}
		u.Host = current.Host
	}
	u.Scheme = current.Scheme
	if u.String() == current.String() {
		return nil, fmt.Errorf("link %q points to the page just read", link)
	}
	return u, nil
}

// nextTarget finds the URL of the rel="next" entry of a Link header.
func nextTarget(link string) (string, bool) {
	for _, entry := range splitLinks(link) {
		target, params, _ := strings.Cut(entry, ";")
		if !isNextRel(params) {
			continue
		}
		target = strings.TrimSpace(target)
		target = strings.TrimSuffix(strings.TrimPrefix(target, "<"), ">")
		return target, target != ""
	}
	return "", false
}

// splitLinks splits at commas outside angle brackets (URLs may hold commas).
func splitLinks(link string) []string {
	var entries []string
	depth, start := 0, 0
	for i, c := range link {
		switch {
		case c == '<':
			depth++
		case c == '>' && depth > 0:
			depth--
		case c == ',' && depth == 0:
			entries = append(entries, link[start:i])
			start = i + 1
		}
	}
	return append(entries, link[start:])
}

func isNextRel(params string) bool {
	for _, p := range strings.Split(params, ";") {
		key, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(key), "rel") && strings.EqualFold(strings.Trim(strings.TrimSpace(value), `"`), "next") {
			return true
		}
	}
	return false
}
