// Package imagetest tests the resource image itself: it starts it with Docker and runs check, in
// and out inside it, as Concourse would, against a registry on the host. The container's root is
// Docker's overlay2, as a Concourse container's is overlayfs, and the put's work dir is a bind
// mount at /tmp/build/put, as Concourse's volume: out must build with overlay storage there.
//
// The image the tests run is built in seconds by resourceimage (which the bench uses too): check, in
// and out are compiled on the host with the root Dockerfile's static build line and put on a busybox
// base by dockerfiles/Dockerfile.prebuilt (the Dockerfile's final stage). Opt-in, by environment variable:
//   - IMAGETEST_FULL_BUILD=1: TestFullDockerfileBuild builds the root Dockerfile itself in Docker
//     (debootstrap makes GO_IMAGE once per machine; a cold compile: minutes) and runs check in it.
//   - IMAGETEST_MEASURE=1: TestMeasureStorage times a put with each storage placement (log only).
//
// Every external step (go build, docker build, import and run, debootstrap, starting dockerd) has a
// timeout and names itself when it runs out. It holds tests only.
package imagetest
