// Package e2e drives the compiled check, in and out binaries the way Concourse does (request on
// stdin, work directory as the argument, response on stdout) against real registries, and checks
// what they wrote and what the registry received. It holds tests only.
package e2e
