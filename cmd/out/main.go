// Command out builds (with buildah) or loads an image and pushes it: Concourse's put for buildah-image.
package main

import (
	"os"

	"github.com/imagesmith/buildah-image-resource/pkg/build"
	"github.com/imagesmith/buildah-image-resource/pkg/resource"
)

func main() {
	// buildah re-executes this binary for chroot isolation and copying; those runs stop here.
	if build.Reexec() {
		return
	}
	os.Exit(resource.Main(resource.Out))
}
