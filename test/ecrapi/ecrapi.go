// Package ecrapi is a stand-in for Amazon ECR's API, for tests: an HTTP
// endpoint speaking ECR's JSON 1.1 protocol (POST /, header
// X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Operation>) for
// DescribeImages, BatchGetImage, PutImage, BatchDeleteImage and
// GetAuthorizationToken, backed by a real registry (test/localregistry): each
// call is translated into registry v2 calls on the backend repository of the
// same name. The real aws-sdk-go-v2 ECR client talks to it through its
// endpoint override.
//
// Live ECR cannot be reached from the machines these tests run on; this
// endpoint follows ECR's documented wire format and error names
// (ImageNotFoundException, ImageAlreadyExistsException,
// ImageTagAlreadyExistsException, RepositoryNotFoundException).
package ecrapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/utils/clock"
)

// targetPrefix is ECR's JSON 1.1 service name in X-Amz-Target.
const targetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// Options configure the endpoint.
type Options struct {
	// Backend is the registry the repositories live in ("127.0.0.1:5000"),
	// reached over plain HTTP.
	Backend string
	// BackendAuth authenticates to the backend; nil means anonymous.
	BackendAuth authn.Authenticator
	// TokenPassword is the password inside the tokens GetAuthorizationToken
	// hands out (user "AWS"); give the backend the same htpasswd user to
	// have clients use them for real.
	TokenPassword string
	// ProxyEndpoint is what GetAuthorizationToken reports as the registry
	// URL; "" means "http://" + Backend. Point it at a faultproxy to watch
	// registry-protocol calls.
	ProxyEndpoint string
	// TokenTTL is the tokens' validity; 0 means ECR's 12 h.
	TokenTTL time.Duration
	// Clock is the clock for token expiry; nil means the real clock.
	Clock clock.Clock
}

// Server is a running ECR API stand-in on 127.0.0.1.
type Server struct {
	// URL is the endpoint to give the SDK ("http://127.0.0.1:<port>").
	URL string

	opts    Options
	server  *http.Server
	backend *backend

	mu        sync.Mutex
	calls     map[string]int
	immutable map[string]bool
	lastAuth  string
}

// Start serves the endpoint.
func Start(opts Options) (*Server, error) {
	if opts.ProxyEndpoint == "" {
		opts.ProxyEndpoint = "http://" + opts.Backend
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 12 * time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.BackendAuth == nil {
		opts.BackendAuth = authn.Anonymous
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), opts: opts, backend: &backend{host: opts.Backend, auth: opts.BackendAuth},
		calls: map[string]int{}, immutable: map[string]bool{}}
	s.server = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(s.serve)}
	go func() { _ = s.server.Serve(ln) }()
	return s, nil
}

// Close stops the endpoint.
func (s *Server) Close() error { return s.server.Close() }

// SetImmutable makes a repository's tags immutable, as ECR's
// imageTagMutability IMMUTABLE does.
func (s *Server) SetImmutable(repository string, immutable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.immutable[repository] = immutable
}

// Calls counts calls of an operation ("DescribeImages"); "" counts all.
func (s *Server) Calls(operation string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if operation != "" {
		return s.calls[operation]
	}
	total := 0
	for _, n := range s.calls {
		total += n
	}
	return total
}

// LastAuthorization is the Authorization header of the last call, so tests
// can check the SDK signed it (SigV4) with the credentials they set.
func (s *Server) LastAuthorization() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuth
}

// apiError is an ECR error as the JSON 1.1 protocol sends it.
type apiError struct {
	Type    string
	Message string
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

func errorf(typ, format string, args ...any) error {
	return &apiError{Type: typ, Message: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if r.Method != http.MethodPost || !ok {
		writeError(w, errorf("UnknownOperationException", "expected POST with X-Amz-Target %s<Operation>", targetPrefix))
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		writeError(w, errorf("MissingAuthenticationTokenException", "request is not signed with SigV4"))
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.lastAuth = r.Header.Get("Authorization")
	s.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeError(w, errorf("InvalidParameterException", "reading body: %v", err))
		return
	}
	out, err := s.dispatch(op, body)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) dispatch(op string, body []byte) (any, error) {
	switch op {
	case "DescribeImages":
		return decodeAnd(body, s.describeImages)
	case "BatchGetImage":
		return decodeAnd(body, s.batchGetImage)
	case "PutImage":
		return decodeAnd(body, s.putImage)
	case "BatchDeleteImage":
		return decodeAnd(body, s.batchDeleteImage)
	case "GetAuthorizationToken":
		return s.getAuthorizationToken(), nil
	default:
		return nil, errorf("UnknownOperationException", "operation %s is not implemented by this stand-in", op)
	}
}

func decodeAnd[In any](body []byte, handle func(In) (any, error)) (any, error) {
	var in In
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errorf("SerializationException", "%v", err)
	}
	return handle(in)
}

func writeError(w http.ResponseWriter, err error) {
	var api *apiError
	status := http.StatusBadRequest
	if !errors.As(err, &api) {
		api = &apiError{Type: "ServerException", Message: err.Error()}
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", api.Type)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": api.Type, "message": api.Message})
}

func (s *Server) getAuthorizationToken() any {
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + s.opts.TokenPassword))
	expires := s.opts.Clock.Now().Add(s.opts.TokenTTL)
	return map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": token, "expiresAt": float64(expires.Unix()), "proxyEndpoint": s.opts.ProxyEndpoint,
	}}}
}
