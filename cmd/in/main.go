// Command in saves an image into the work directory: Concourse's get for buildah-image.
package main

import (
	"os"

	"github.com/imagesmith/buildah-image-resource/pkg/resource"
)

func main() {
	os.Exit(resource.Main(resource.In))
}
