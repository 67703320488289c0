package faultproxy

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Match selects the requests a fault applies to.
type Match struct {
	// Method is "HEAD", "GET", …; "" matches any.
	Method string
	// Kind is "manifests", "tags", "blobs" or "other"; "" matches any.
	Kind string
	// Times is how many requests the fault hits; 0 means every one.
	Times int
}

// Fault is what the proxy does to a matched request. Faults of several
// matching rules combine: delays add up, and an answer or reset ends the
// request before it reaches the registry.
type Fault struct {
	// Delay holds the request this long before anything else.
	Delay time.Duration
	// Status answers with this code instead of forwarding (0: forward).
	Status int
	// RetryAfter is sent with Status (seconds or an HTTP date).
	RetryAfter string
	// Body is sent with Status.
	Body string
	// Reset drops the TCP connection with a RST instead of answering.
	Reset bool
	// DropDigest removes Docker-Content-Digest from the registry's answer.
	DropDigest bool
	// Digest replaces Docker-Content-Digest in the registry's answer: a
	// registry still serving a tag's previous digest (a push announced
	// before readers see it).
	Digest string
	// PageSize caps the n of tags/list requests, so listings span pages.
	PageSize int
	// QuayLinks rewrites Link headers as Quay sends them: no angle
	// brackets, an opaque next_page token instead of last=.
	QuayLinks bool
	// LinkWithoutPort rewrites Link headers to absolute URLs without the
	// port, as Nexus sends them.
	LinkWithoutPort bool
	// Header is added to the registry's answer (e.g. Docker Hub's
	// ratelimit-limit and ratelimit-remaining).
	Header http.Header
}

// TooManyRequests answers 429 with a Retry-After and Docker Hub's body.
func TooManyRequests(retryAfter string) Fault {
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter,
		Body: `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`}
}

// ServerError answers with a 5xx code.
func ServerError(code int) Fault {
	return Fault{Status: code, Body: `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`}
}

// Slow delays the request before forwarding it.
func Slow(d time.Duration) Fault { return Fault{Delay: d} }

// NoDigest forwards but strips Docker-Content-Digest from the answer.
func NoDigest() Fault { return Fault{DropDigest: true} }

// QuayPaging cuts tag lists into pages of n with Quay-style Link headers.
func QuayPaging(n int) Fault { return Fault{PageSize: n, QuayLinks: true} }

// NexusPaging cuts tag lists into pages of n with links that drop the port.
func NexusPaging(n int) Fault { return Fault{PageSize: n, LinkWithoutPort: true} }

// StaleDigest forwards but answers digest as the tag's, as a registry
// does before a push is visible to readers.
func StaleDigest(digest string) Fault { return Fault{Digest: digest} }

// ConnectionReset drops the connection.
func ConnectionReset() Fault { return Fault{Reset: true} }

// Rule is an injected fault; Remove stops it.
type Rule struct {
	match Match
	fault Fault
	left  int // hits left when match.Times > 0
	hits  int
	p     *Proxy
}

// Inject adds a fault for matching requests and returns its rule.
func (p *Proxy) Inject(m Match, f Fault) *Rule {
	r := &Rule{match: m, fault: f, left: m.Times, p: p}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
	return r
}

// Hits counts the requests the rule has applied to.
func (r *Rule) Hits() int {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.hits
}

// Remove stops the rule.
func (r *Rule) Remove() {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	for i, other := range r.p.rules {
		if other == r {
			r.p.rules = append(r.p.rules[:i], r.p.rules[i+1:]...)
			return
		}
	}
}

// Clear removes every rule.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// take returns the faults of every rule matching, spending their hits.
func (p *Proxy) take(method, kind string) []Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var faults []Fault
	kept := p.rules[:0]
	for _, r := range p.rules {
		if (r.match.Method == "" || r.match.Method == method) && (r.match.Kind == "" || r.match.Kind == kind) {
			faults = append(faults, r.fault)
			r.hits++
			if r.match.Times > 0 {
				r.left--
				if r.left == 0 {
					continue
				}
			}
		}
		kept = append(kept, r)
	}
	p.rules = kept
	return faults
}

// applyBefore delays, answers or resets; true means the request is done.
func applyBefore(w *statusRecorder, r *http.Request, faults []Fault) bool {
	for _, f := range faults {
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return true
			}
		}
	}
	for _, f := range faults {
		switch {
		case f.Reset:
			reset(w)
			return true
		case f.Status != 0:
			answer(w, f)
			return true
		case f.PageSize > 0 && Kind(r.URL.Path) == "tags":
			capPageSize(r, f.PageSize)
		}
	}
	return false
}

func answer(w http.ResponseWriter, f Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	_, _ = w.Write([]byte(f.Body))
}

// reset closes the connection with SO_LINGER 0, so the client sees a RST.
func reset(w *statusRecorder) {
	w.status = 0
	conn, _, err := w.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

func capPageSize(r *http.Request, size int) {
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("n")); err != nil || n > size {
		q.Set("n", strconv.Itoa(size))
		r.URL.RawQuery = q.Encode()
	}
}

type faultsKey struct{}

func withFaults(ctx context.Context, faults []Fault) context.Context {
	return context.WithValue(ctx, faultsKey{}, faults)
}

// modifyResponse applies the faults that change the registry's answer. It
// also points a Bearer challenge's realm on the registry's own host at the
// proxy, so token auth keeps working through it (clients refuse realms on
// loopback addresses other than the registry's host).
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if auth := resp.Header.Get("WWW-Authenticate"); auth != "" {
		resp.Header.Set("WWW-Authenticate", strings.ReplaceAll(auth, "://"+p.target+"/", "://"+p.Host+"/"))
	}
	faults, _ := resp.Request.Context().Value(faultsKey{}).([]Fault)
	for _, f := range faults {
		if f.DropDigest {
			resp.Header.Del("Docker-Content-Digest")
		}
		for k, vs := range f.Header {
			resp.Header[http.CanonicalHeaderKey(k)] = vs
		}
		if f.Digest != "" && resp.Header.Get("Docker-Content-Digest") != "" {
			resp.Header.Set("Docker-Content-Digest", f.Digest)
		}
		if link := resp.Header.Get("Link"); link != "" && f.QuayLinks {
			resp.Header.Set("Link", quayLink(link))
		}
		if link := resp.Header.Get("Link"); link != "" && f.LinkWithoutPort {
			resp.Header.Set("Link", portlessLink(link, p.Host))
		}
	}
	return nil
}

// quayLink turns `</v2/x/tags/list?last=a&n=2>; rel="next"` into
// `/v2/x/tags/list?n=2&next_page=<opaque>; rel="next"`.
func quayLink(link string) string {
	u, ok := linkURL(link)
	if !ok {
		return link
	}
	q := u.Query()
	if last := q.Get("last"); last != "" {
		q.Del("last")
		q.Set("next_page", base64.RawURLEncoding.EncodeToString([]byte("quay:"+last)))
	}
	u.RawQuery = q.Encode()
	return u.String() + `; rel="next"`
}

// portlessLink makes the link absolute on the proxy's host without its port.
func portlessLink(link, host string) string {
	u, ok := linkURL(link)
	if !ok {
		return link
	}
	u.Scheme, u.Host = "http", strings.Split(host, ":")[0]
	return "<" + u.String() + `>; rel="next"`
}

func linkURL(link string) (*url.URL, bool) {
	target, _, _ := strings.Cut(link, ";")
	target = strings.Trim(strings.TrimSpace(target), "<>")
	u, err := url.Parse(target)
	return u, err == nil && target != ""
}

// translateQuayToken turns a next_page token back into Distribution's last=.
func translateQuayToken(r *http.Request) {
	q := r.URL.Query()
	token := q.Get("next_page")
	if token == "" {
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if last, ok := strings.CutPrefix(string(raw), "quay:"); err == nil && ok {
		q.Del("next_page")
		q.Set("last", last)
		r.URL.RawQuery = q.Encode()
	}
}
