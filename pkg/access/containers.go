package access

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ContainersFiles are the policy rendered for containers/image (buildah): the paths to give a
// SystemContext as AuthFilePath, SystemRegistriesConfPath and DockerPerHostCertDirPath.
type ContainersFiles struct {
	AuthFile       string // auth.json, 0600: credentials of the hosts only
	RegistriesConf string // registries.conf: insecure hosts, Docker Hub's mirror
	CertsDir       string // certs.d: <host>/ca.crt, client.cert, client.key
}

// WriteContainersFiles writes the policy's files for the registries a build may contact, named
// as containers/image names them (docker.io for Docker Hub), into dir. Docker Hub's mirror is
// added when docker.io is among them. The files are written even when empty, so that nothing of
// the host machine is used.
func (p *Policy) WriteContainersFiles(dir string, hosts []string) (ContainersFiles, error) {
	hosts = p.withMirror(hosts)
	files := ContainersFiles{
		AuthFile:       filepath.Join(dir, "auth.json"),
		RegistriesConf: filepath.Join(dir, "registries.conf"),
		CertsDir:       filepath.Join(dir, "certs.d"),
	}
	if err := p.writeAuthFile(files.AuthFile, hosts); err != nil {
		return ContainersFiles{}, err
	}
	if err := p.writeRegistriesConf(files.RegistriesConf, hosts); err != nil {
		return ContainersFiles{}, err
	}
	if err := p.writeCertsDir(files.CertsDir, hosts); err != nil {
		return ContainersFiles{}, err
	}
	return files, nil
}

// withMirror normalises hosts, drops repeats, and adds the mirror when Docker Hub is among them.
func (p *Policy) withMirror(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if h = Normalize(h); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if p.mirror != "" && slices.Contains(out, "docker.io") && !slices.Contains(out, p.mirror) {
		out = append(out, p.mirror)
	}
	return out
}

func (p *Policy) writeAuthFile(path string, hosts []string) error {
	type entry struct {
		Auth string `json:"auth"`
	}
	auths := map[string]entry{}
	for _, host := range hosts {
		if c, ok := p.Credential(host); ok {
			auths[host] = entry{Auth: base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))}
		}
	}
	data, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		return fmt.Errorf("encoding registry credentials: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing registry credentials file: %w", err)
	}
	return nil
}

func (p *Policy) writeRegistriesConf(path string, hosts []string) error {
	var b strings.Builder
	b.WriteString("unqualified-search-registries = [\"docker.io\"]\n")
	for _, host := range hosts {
		if p.Insecure(host) && (p.mirror == "" || host != "docker.io") {
			fmt.Fprintf(&b, "\n[[registry]]\nlocation = %s\ninsecure = true\n", strconv.Quote(host))
		}
	}
	if p.mirror != "" && slices.Contains(hosts, "docker.io") {
		fmt.Fprintf(&b, "\n[[registry]]\nlocation = \"docker.io\"\ninsecure = %t\n", p.Insecure("docker.io"))
		fmt.Fprintf(&b, "\n[[registry.mirror]]\nlocation = %s\ninsecure = %t\n", strconv.Quote(p.mirror), p.Insecure(p.mirror))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing registries.conf: %w", err)
	}
	return nil
}

// writeCertsDir writes <host>/ca.crt and client.cert/client.key for each host that has them;
// Docker Hub's under registry-1.docker.io too, the name containers/image looks it up by.
func (p *Policy) writeCertsDir(dir string, hosts []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, host := range hosts {
		names := []string{host}
		if host == "docker.io" {
			names = append(names, "registry-1.docker.io")
		}
		for _, n := range names {
			if err := p.writeHostCerts(filepath.Join(dir, n), host); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Policy) writeHostCerts(dir, host string) error {
	files := map[string]string{}
	if cas := p.CACerts(host); len(cas) > 0 {
		files["ca.crt"] = strings.Join(cas, "\n")
	}
	if c, ok := p.ClientCert(host); ok {
		files["client.cert"], files["client.key"] = c.Cert, c.Key
	}
	if len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing %s for %s: %w", name, host, err)
		}
	}
	return nil
}
