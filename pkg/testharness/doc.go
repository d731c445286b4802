// Package testharness is for tests only: it must never be imported by the
// resource binaries.
//
// It provides what the end-to-end tests of the check, in and out binaries
// need, all offline and on 127.0.0.1:
//
//   - deterministic test images built with go-containerregistry
//     (BusyboxImage, MultiLayerImage, TwoPlatformIndex, and BusyboxImageFor
//     an architecture with that architecture's own busybox) and helpers to
//     save them as OCI or docker archives;
//   - registries (StartInProcess, StartDistribution), each behind an
//     in-process recorder so tests can assert on the traffic a registry saw;
//   - the resource binaries, compiled once per test process (Binaries) and
//     driven the way Concourse drives them (Run).
package testharness
