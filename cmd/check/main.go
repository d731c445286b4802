// Command check reports the digests of a repository's image: Concourse's check for buildah-image.
package main

import (
	"os"

	"github.com/imagesmith/buildah-image-resource/pkg/resource"
)

func main() {
	os.Exit(resource.Main(resource.Check))
}
