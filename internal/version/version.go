// Package version holds the build's version, stamped by the linker:
// -ldflags "-X github.com/edgeagent/edgeagent/internal/version.Version=v1.2.3".
package version

// Version is the release version, "dev" for local builds.
var Version = "dev"
