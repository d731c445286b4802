package build

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containers/buildah/define"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/sandbox"
)

// isolation is how RUN steps run: buildah's chroot isolation where this container may make a
// mount namespace and mount in it (a privileged container), else the resource's own runtime,
// pkg/sandbox, through buildah's OCI isolation (an unprivileged one).
type isolation struct {
	runtime string // the sandbox runtime's path; "" = chroot isolation
	root    string // the sandbox's state directory
}

// chooseIsolation probes this container under dir and says its choice in one log line when it
// is the sandbox. force picks the sandbox wherever (Options.Sandbox).
func chooseIsolation(dir string, force bool, log *logrus.Logger) (isolation, error) {
	self, err := os.Executable()
	if err != nil {
		return isolation{}, fmt.Errorf("finding this program for the RUN runtime: %w", err)
	}
	i := isolation{runtime: filepath.Join(dir, sandbox.Name), root: filepath.Join(dir, "sandbox")}
	probe := filepath.Join(dir, "sandbox-probe")
	for _, d := range []string{i.root, probe} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return isolation{}, err
		}
	}
	if err := os.Symlink(self, i.runtime); err != nil {
		return isolation{}, fmt.Errorf("linking the RUN runtime: %w", err)
	}
	needed, reason := sandbox.Needed(i.runtime, probe)
	switch {
	case force && !needed:
		reason = "asked for"
	case !needed:
		return isolation{}, nil
	}
	log.Infof("RUN steps: chrooted by the resource's own runtime, without /proc or mounts (%s); see README, Unprivileged containers", reason)
	return i, nil
}

// apply sets buildah's options for the choice.
func (i isolation) apply(o *define.BuildOptions) {
	if i.runtime == "" {
		o.Isolation = define.IsolationChroot
		return
	}
	o.Isolation = define.IsolationOCI
	o.Runtime = i.runtime
	o.RuntimeArgs = []string{"--root", i.root}
	// No network namespace can be made: steps use the container's, as chroot isolation does.
	o.NamespaceOptions = define.NamespaceOptions{{Name: string(specs.NetworkNamespace), Host: true}}
	o.ConfigureNetwork = define.NetworkEnabled
}
