// Package imagetest tests the resource image itself: it builds the image from the root
// Dockerfile on bases made on this machine (Docker Hub may be out of reach), starts it with
// Docker and runs check, in and out inside it, as Concourse would, against a registry on the
// host. It holds tests only.
package imagetest
