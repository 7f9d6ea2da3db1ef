// Package proto holds the generated Go code for the subset of Velociraptor's
// gRPC API that velohunt uses (see api.proto).
package proto

// Regenerate with `go generate ./proto` (needs protoc, e.g. Debian's
// protobuf-compiler; the Go plugins are pinned as tools in go.mod).
//go:generate sh generate.sh
