package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// Log formats of --logging-format, the names Kubernetes components use.
const (
	logFormatText = "text"
	logFormatJSON = "json"
)

// Verbosity levels (--v) and what each adds; docs/operations.md lists them
// for operators.
const (
	// logLevelChanges (2) adds decisions that change nothing yet: exports,
	// re-checked pushes, replaced requests.
	logLevelChanges = 2
	// logLevelRequests (4) adds every request to the Kubernetes API, with
	// verb, path, status and duration.
	logLevelRequests = 4
)

// loggingFlags are klog's --v and --vmodule and --logging-format, as every
// Kubernetes component offers them.
type loggingFlags struct {
	format string
}

func (l *loggingFlags) addFlags(fs *pflag.FlagSet) {
	goFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(goFlags)
	for _, name := range []string{"v", "vmodule"} {
		fs.AddGoFlag(goFlags.Lookup(name))
	}
	fs.Lookup("v").Usage = "log verbosity: 0 actions and errors, 2 also decisions that change nothing, 4 also every Kubernetes API and registry request (docs/operations.md)"
	fs.StringVar(&l.format, "logging-format", logFormatText, "log format: text (klog's) or json (one object per line, structured keys as fields)")
}

// apply sets the log format for the whole process; w receives JSON lines.
func (l *loggingFlags) apply(w io.Writer) error {
	switch l.format {
	case logFormatText:
		return nil
	case logFormatJSON:
		klog.SetLogger(jsonLogger(w))
		return nil
	default:
		return fmt.Errorf("--logging-format %q: use text or json", l.format)
	}
}

// jsonLogger writes one JSON object per line: time, msg, v (the verbosity
// of an info line) or level "error", the caller's key/value pairs as
// fields and, for errors, err. klog has already checked --v by the time a
// line gets here, so the handler lets every level through.
func jsonLogger(w io.Writer) logr.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.Level(-128),
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 || a.Key != slog.LevelKey {
				return a
			}
			level, _ := a.Value.Any().(slog.Level)
			if level >= slog.LevelWarn {
				return slog.String("level", "error")
			}
			// logr's V(n) is slog level -n.
			return slog.Int("v", int(slog.LevelInfo-level))
		},
	})
	return logr.FromSlogHandler(h)
}

// requestLogger logs every Kubernetes API request at --v=4, so an operator
// sees what a rollout asked of the API server and how long it took.
type requestLogger struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (r requestLogger) RoundTrip(req *http.Request) (*http.Response, error) {
	v := klog.V(logLevelRequests)
	if !v.Enabled() {
		return r.next.RoundTrip(req)
	}
	start := time.Now()
	resp, err := r.next.RoundTrip(req)
	kv := []any{"verb", req.Method, "path", req.URL.Path, "query", req.URL.RawQuery, "duration", time.Since(start).Round(time.Microsecond)}
	if err != nil {
		v.InfoS("Kubernetes API request failed", append(kv, "err", err.Error())...)
		return resp, err
	}
	v.InfoS("Kubernetes API request", append(kv, "status", resp.StatusCode)...)
	return resp, nil
}
