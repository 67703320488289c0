// Package version reports the build's version, stamped by the linker:
//
//	go build -ldflags "-X cvmanager.dev/cvmanager/pkg/version.Version=v0.1.0 -X cvmanager.dev/cvmanager/pkg/version.Commit=$(git rev-parse HEAD)"
package version

import (
	"fmt"
	"runtime"
)

// Version and Commit are set at link time; the defaults mark a development build.
var (
	Version = "v0.0.0-dev"
	Commit  = "unknown"
)

// Info is the build information served by `cvmanager version` and /version.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns this binary's build information.
func Get() Info {
	return Info{
		Version:   Version,
		Commit:    Commit,
		GoVersion: runtime.Version(),
		Platform:  fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH),
	}
}
