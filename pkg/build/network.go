package build

import (
	"errors"

	nettypes "github.com/containers/common/libnetwork/types"
)

// hostNetwork is the network interface handed to buildah. Chroot isolation
// always runs on the host network and never uses it; passing it stops
// buildah from setting up netavark/CNI, which writes to /run/containers
// and /etc/containers.
type hostNetwork struct{}

var errNoNetworks = errors.New("container networks are not supported: chroot isolation uses the host network")

func (hostNetwork) NetworkCreate(nettypes.Network, *nettypes.NetworkCreateOptions) (nettypes.Network, error) {
	return nettypes.Network{}, errNoNetworks
}
func (hostNetwork) NetworkUpdate(string, nettypes.NetworkUpdateOptions) error { return errNoNetworks }
func (hostNetwork) NetworkRemove(string) error                                { return errNoNetworks }
func (hostNetwork) NetworkList(...nettypes.FilterFunc) ([]nettypes.Network, error) {
	return nil, nil
}
func (hostNetwork) NetworkInspect(string) (nettypes.Network, error) {
	return nettypes.Network{}, errNoNetworks
}
func (hostNetwork) Setup(string, nettypes.SetupOptions) (map[string]nettypes.StatusBlock, error) {
	return nil, errNoNetworks
}
func (hostNetwork) Teardown(string, nettypes.TeardownOptions) error { return nil }
func (hostNetwork) RunInRootlessNetns(func() error) error           { return errNoNetworks }
func (hostNetwork) RootlessNetnsInfo() (*nettypes.RootlessNetnsInfo, error) {
	return nil, errNoNetworks
}
func (hostNetwork) Drivers() []string                 { return nil }
func (hostNetwork) DefaultNetworkName() string        { return "host" }
func (hostNetwork) NetworkInfo() nettypes.NetworkInfo { return nettypes.NetworkInfo{} }
