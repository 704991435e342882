// Not Go: a module boundary, so that `go ... ./...` from the repository
// root does not walk this directory's node_modules.
module sparkplug-crosscheck
